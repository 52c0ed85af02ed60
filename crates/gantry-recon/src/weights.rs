//! The weights of analytic reconstruction, each a small named step: the cosine (pre-)weight,
//! the redundancy weight (full scan, Parker short scan, parallel half turn, displaced
//! detector) and the angular step of every view.

use gantry_core::{Beam, CoreError, DetectorShape, Result, ScanGeometry};
use ndarray::{Array2, ArrayViewMut2};
use std::f64::consts::PI;

/// The cosine weight of every pixel of one view (`[row][col]`): the obliquity of each ray on a
/// flat detector, SDD/√(SDD² + u² + v²); on a cylindrical detector cos γ · R/√(R² + v²); 1 for
/// a parallel beam.
pub fn cosine_weight_table(scan: &ScanGeometry, view: usize) -> Array2<f32> {
    let det = &scan.detector;
    let sdd = scan.views[view].sdd_mm();
    Array2::from_shape_fn((det.n_rows, det.n_cols), |(r, c)| {
        if scan.beam == Beam::Parallel {
            return 1.0;
        }
        let u = det.col_to_u(c as f64);
        let v = det.row_to_v(r as f64);
        let w = match det.shape {
            DetectorShape::Flat => sdd / (sdd * sdd + u * u + v * v).sqrt(),
            DetectorShape::Cylindrical => (u / sdd).cos() * sdd / (sdd * sdd + v * v).sqrt(),
        };
        w as f32
    })
}

/// Multiplies one view's projection (`[row][col]`) by its cosine weight.
pub fn cosine_weight(scan: &ScanGeometry, view: usize, mut proj: ArrayViewMut2<f32>) {
    if scan.beam == Beam::Parallel {
        return;
    }
    proj *= &cosine_weight_table(scan, view);
}

/// How often each ray is measured, and the weight that makes every line count once (with the
/// ramp filter's factor ½ of a full turn).
#[derive(Debug, Clone, PartialEq)]
pub enum Redundancy {
    /// A full turn: every line twice, weight 1.
    FullScan,
    /// A full turn on a displaced detector: rays on the long side are measured once, weight 2,
    /// with a smooth sin² transition over the overlap |γ| ≤ `overlap_rad` (Wang 2002).
    DisplacedDetector { overlap_rad: f64, long_side_positive: bool },
    /// A cone-beam short scan: Parker weights generalised to any arc ≥ 180° + fan (Wesarg et
    /// al. 2002), `delta_rad` = (arc − 180°)/2, times 2.
    Parker { delta_rad: f64, direction: f64 },
    /// A parallel beam over half a turn: weight 2.
    ParallelHalfTurn,
}

impl Redundancy {
    /// The redundancy scheme a geometry needs, or an error if its arc cannot be reconstructed.
    pub fn for_geometry(scan: &ScanGeometry) -> Result<Redundancy> {
        let angles = scan.unwrapped_angles();
        let n = angles.len();
        let span = (angles[n - 1] - angles[0]).abs();
        let step = if n > 1 { span / (n - 1) as f64 } else { 2.0 * PI };
        let covered = span + step;
        if covered > 2.0 * PI * (1.0 + 1e-6) + step {
            return Err(CoreError::invalid(
                "scan arc",
                format!("{:.1}°", span.to_degrees()),
                "analytic reconstruction here takes at most one turn (helical reconstruction is not available yet)",
            ));
        }
        let full = (covered - 2.0 * PI).abs() < 0.5 * step + 1e-9;
        let fan = scan.max_fan_angle();
        if full {
            let det = &scan.detector;
            let lo = -scan.fan_angle(0, -0.5);
            let hi = scan.fan_angle(0, det.n_cols as f64 - 0.5);
            // lo and hi are the extents on each side (positive when the side exists).
            let (short, long) = (lo.min(hi), lo.max(hi));
            if scan.beam == Beam::Cone && short < 0.9 * long {
                if short <= 0.0 {
                    return Err(CoreError::invalid(
                        "detector.offset_u_mm",
                        det.offset_u_mm,
                        "the detector must reach past the central ray for a displaced-detector scan",
                    ));
                }
                // Overlap up to half a pixel short of the short side's edge.
                let px = scan.fan_angle(0, 1.0) - scan.fan_angle(0, 0.0);
                return Ok(Redundancy::DisplacedDetector {
                    overlap_rad: short - 0.5 * px.abs(),
                    long_side_positive: hi > lo,
                });
            }
            return Ok(Redundancy::FullScan);
        }
        match scan.beam {
            Beam::Parallel => {
                if span + step < PI * (1.0 - 1e-6) {
                    return Err(CoreError::invalid(
                        "scan arc",
                        format!("{:.1}°", span.to_degrees()),
                        "a parallel-beam scan needs at least 180°",
                    ));
                }
                Ok(Redundancy::ParallelHalfTurn)
            }
            Beam::Cone => {
                let delta = 0.5 * (span - PI);
                if delta < fan - 1e-6 {
                    return Err(CoreError::invalid(
                        "scan arc",
                        format!("{:.2}°", span.to_degrees()),
                        format!(
                            "a short scan needs at least 180° plus the fan angle, {:.2}°",
                            180.0 + 2.0 * fan.to_degrees()
                        ),
                    ));
                }
                // +1 when the detector u axis points the way the gantry turns.
                let direction = if n > 1 {
                    let g0 = &scan.views[0];
                    let s1 = scan.views[1].source_mm;
                    let d = gantry_core::geometry::dot(g0.u, gantry_core::geometry::sub(s1, g0.source_mm));
                    if d >= 0.0 {
                        1.0
                    } else {
                        -1.0
                    }
                } else {
                    1.0
                };
                Ok(Redundancy::Parker { delta_rad: delta, direction })
            }
        }
    }

    /// What was chosen, for the reconstruction log: "full turn", "Parker short scan over
    /// 206.2° (δ = 13.1°)", "displaced detector (overlap ±2.9°)", "parallel half turn".
    pub fn describe(&self) -> String {
        match *self {
            Redundancy::FullScan => "full turn".into(),
            Redundancy::ParallelHalfTurn => "parallel half turn".into(),
            Redundancy::DisplacedDetector { overlap_rad, .. } => {
                format!("displaced detector (overlap ±{:.2}°)", overlap_rad.to_degrees())
            }
            Redundancy::Parker { delta_rad, .. } => format!(
                "Parker short scan over {:.2}° (δ = {:.2}°)",
                180.0 + 2.0 * delta_rad.to_degrees(),
                delta_rad.to_degrees()
            ),
        }
    }

    /// The weight of the ray at column `col` of `view`.
    pub fn weight(&self, scan: &ScanGeometry, angles: &[f64], view: usize, col: f64) -> f64 {
        match *self {
            Redundancy::FullScan => 1.0,
            Redundancy::ParallelHalfTurn => 2.0,
            Redundancy::DisplacedDetector { overlap_rad, long_side_positive } => {
                let g = scan.fan_angle(view, col);
                let g = if long_side_positive { g } else { -g };
                if g >= overlap_rad {
                    2.0
                } else if g <= -overlap_rad {
                    0.0
                } else {
                    2.0 * (0.25 * PI * (g + overlap_rad) / overlap_rad).sin().powi(2)
                }
            }
            Redundancy::Parker { delta_rad, direction } => {
                let beta = (angles[view] - angles[0]).abs();
                // Parker's γ: the conjugate of (β, γ) is (β + π + 2γ, −γ).
                let gamma = -direction * scan.fan_angle(view, col);
                2.0 * parker(beta, gamma, delta_rad)
            }
        }
    }
}

/// The Parker weight of the ray (β, γ) in a short scan over π + 2δ (Wesarg's generalisation to
/// any δ ≥ |γ|): rises as sin² over [0, 2δ − 2γ], 1 up to π − 2γ, falls as sin² to π + 2δ.
pub fn parker(beta: f64, gamma: f64, delta: f64) -> f64 {
    let rise = 2.0 * (delta - gamma);
    if beta < 0.0 || beta > PI + 2.0 * delta {
        0.0
    } else if beta < rise {
        (0.25 * PI * beta / (delta - gamma)).sin().powi(2)
    } else if beta <= PI - 2.0 * gamma {
        1.0
    } else {
        (0.25 * PI * (PI + 2.0 * delta - beta) / (delta + gamma)).sin().powi(2)
    }
}

/// The angular step each view stands for (radians): 2π/N for a full turn, the trapezoid rule
/// over the sampled arc otherwise.
pub fn view_angular_steps(scan: &ScanGeometry, redundancy: &Redundancy) -> Vec<f64> {
    let angles = scan.unwrapped_angles();
    let n = angles.len();
    if n == 1 {
        return vec![2.0 * PI];
    }
    match redundancy {
        Redundancy::FullScan | Redundancy::DisplacedDetector { .. } => vec![2.0 * PI / n as f64; n],
        _ => (0..n)
            .map(|i| {
                let prev = if i > 0 { (angles[i] - angles[i - 1]).abs() } else { 0.0 };
                let next = if i + 1 < n { (angles[i + 1] - angles[i]).abs() } else { 0.0 };
                0.5 * (prev + next)
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gantry_core::ScanProtocol;

    #[test]
    fn parker_weights_of_conjugate_rays_sum_to_one() {
        let delta = 0.3;
        for &gamma in &[-0.25, -0.1, 0.0, 0.13, 0.29] {
            for i in 0..200 {
                let beta = i as f64 / 199.0 * (PI + 2.0 * delta);
                let conj = beta + PI + 2.0 * gamma;
                let conj_back = beta - PI + 2.0 * gamma;
                let other = if conj <= PI + 2.0 * delta {
                    parker(conj, -gamma, delta)
                } else {
                    parker(conj_back, -gamma, delta)
                };
                let s = parker(beta, gamma, delta) + other;
                assert!((s - 1.0).abs() < 1e-9, "β {beta} γ {gamma}: {s}");
            }
        }
    }

    #[test]
    fn parker_conjugates_agree_with_the_geometry() {
        // For a real short scan, the Parker weights (×2) of a ray and of the geometric conjugate
        // ray through the same line must add to 2.
        let mut p = ScanProtocol::circular_flat(500.0, 1000.0, 720, 101, 1, 3.0);
        p.short_scan = true;
        let scan = p.build().unwrap();
        let red = Redundancy::for_geometry(&scan).unwrap();
        assert!(matches!(red, Redundancy::Parker { .. }));
        let angles = scan.unwrapped_angles();
        for view in [30usize, 100, 200, 300] {
            for col in [10.0, 50.0, 77.0] {
                let w = red.weight(&scan, &angles, view, col);
                // Find the conjugate: the view and column whose ray runs along the same line.
                let (o, d) = scan.ray(view, 0.0, col);
                let mut best = (f64::MAX, 0.0);
                for v2 in 0..scan.n_views() {
                    for c2 in 0..scan.detector.n_cols {
                        let (o2, d2) = scan.ray(v2, 0.0, c2 as f64);
                        let anti = d[0] * d2[0] + d[1] * d2[1] + d[2] * d2[2];
                        let dist = gantry_phantom::phantom::distance_to_line(o2, o, d);
                        let score = (anti + 1.0).abs() * 1000.0 + dist;
                        if score < best.0 {
                            best = (score, red.weight(&scan, &angles, v2, c2 as f64));
                        }
                    }
                }
                assert!((w + best.1 - 2.0).abs() < 0.1, "view {view} col {col}: {w} + {}", best.1);
            }
        }
    }

    #[test]
    fn too_short_an_arc_is_an_error() {
        let mut p = ScanProtocol::circular_flat(500.0, 1000.0, 360, 101, 1, 3.0);
        p.arc_deg = Some(185.0);
        let e = Redundancy::for_geometry(&p.build().unwrap()).unwrap_err().to_string();
        assert!(e.contains("short scan needs at least"), "{e}");
    }
}
