//! Scan geometry: one vector description per view (source, detector centre, detector u and v
//! axes), built from presets (circular full and short scan, helical, parallel beam) and
//! validated once.
//!
//! Scanner frame: z along the rotation axis; the gantry turns in the x–y plane. For the presets,
//! view angle β places the source at `SID·(sin β, −cos β, z)`; the detector u axis
//! `(cos β, sin β, 0)` points the way the gantry turns and v is +z.

use crate::error::{CoreError, Result};
use crate::frame::{PatientPosition, ScanFrame};
use serde::{Deserialize, Serialize};
use std::f64::consts::PI;

/// The shape of the detector surface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DetectorShape {
    /// A plane through the detector centre, spanned by u and v.
    Flat,
    /// An arc of a cylinder whose axis runs along v through the source (focused on the source,
    /// as on clinical scanners); u is arc length at the detector centre's radius.
    Cylindrical,
}

/// Cone (divergent) or parallel rays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Beam {
    /// Rays from the source to every detector pixel (fan beam when there is one row).
    Cone,
    /// Rays perpendicular to the detector, in the direction source → detector centre.
    Parallel,
}

/// The detector array: pixel counts, pitch and the offset of the array from the central ray.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Detector {
    pub shape: DetectorShape,
    pub n_cols: usize,
    pub n_rows: usize,
    /// Column pitch in mm on the detector (arc length for a cylindrical detector).
    pub pixel_u_mm: f64,
    /// Row pitch in mm on the detector.
    pub pixel_v_mm: f64,
    /// Detector coordinate of the array's centre along u, in mm (quarter-detector offset:
    /// `pixel_u_mm / 4`; a displaced detector: a large offset).
    #[serde(default)]
    pub offset_u_mm: f64,
    /// Detector coordinate of the array's centre along v, in mm.
    #[serde(default)]
    pub offset_v_mm: f64,
}

impl Detector {
    /// Detector u coordinate (mm) of column index `col` (fractional allowed).
    pub fn col_to_u(&self, col: f64) -> f64 {
        (col - 0.5 * (self.n_cols as f64 - 1.0)) * self.pixel_u_mm + self.offset_u_mm
    }
    /// Detector v coordinate (mm) of row index `row`.
    pub fn row_to_v(&self, row: f64) -> f64 {
        (row - 0.5 * (self.n_rows as f64 - 1.0)) * self.pixel_v_mm + self.offset_v_mm
    }
    /// Fractional column index of detector coordinate `u_mm`.
    pub fn u_to_col(&self, u_mm: f64) -> f64 {
        (u_mm - self.offset_u_mm) / self.pixel_u_mm + 0.5 * (self.n_cols as f64 - 1.0)
    }
    /// Fractional row index of detector coordinate `v_mm`.
    pub fn v_to_row(&self, v_mm: f64) -> f64 {
        (v_mm - self.offset_v_mm) / self.pixel_v_mm + 0.5 * (self.n_rows as f64 - 1.0)
    }

    fn validate(&self) -> Result<()> {
        if self.n_cols == 0 {
            return Err(CoreError::invalid("detector.n_cols", 0, "must be at least 1"));
        }
        if self.n_rows == 0 {
            return Err(CoreError::invalid("detector.n_rows", 0, "must be at least 1"));
        }
        for (name, v) in [("detector.pixel_u_mm", self.pixel_u_mm), ("detector.pixel_v_mm", self.pixel_v_mm)] {
            if !(v.is_finite() && v > 0.0) {
                return Err(CoreError::invalid(name, v, "must be finite and positive"));
            }
        }
        for (name, v) in [("detector.offset_u_mm", self.offset_u_mm), ("detector.offset_v_mm", self.offset_v_mm)] {
            if !v.is_finite() {
                return Err(CoreError::invalid(name, v, "must be finite"));
            }
        }
        Ok(())
    }
}

/// Where the source and detector are for one view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ViewGeometry {
    /// Focal spot position (mm). For a parallel beam, any point behind the detector centre on
    /// the central ray: it only fixes the ray direction.
    pub source_mm: [f64; 3],
    /// Detector centre (the point of detector coordinates u = v = 0), mm.
    pub detector_center_mm: [f64; 3],
    /// Unit vector of increasing column index.
    pub u: [f64; 3],
    /// Unit vector of increasing row index.
    pub v: [f64; 3],
    /// Gantry angle in radians (informative; used for angular weights and Parker weighting).
    pub angle_rad: f64,
    /// Acquisition time of this view in seconds from the start of the scan.
    pub time_s: f64,
}

pub type Vec3 = [f64; 3];

#[inline]
pub fn dot(a: Vec3, b: Vec3) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}
#[inline]
pub fn sub(a: Vec3, b: Vec3) -> Vec3 {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}
#[inline]
pub fn add(a: Vec3, b: Vec3) -> Vec3 {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
}
#[inline]
pub fn scale(a: Vec3, s: f64) -> Vec3 {
    [a[0] * s, a[1] * s, a[2] * s]
}
#[inline]
pub fn norm(a: Vec3) -> f64 {
    dot(a, a).sqrt()
}
#[inline]
pub fn cross(a: Vec3, b: Vec3) -> Vec3 {
    [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
}

impl ViewGeometry {
    /// Source-to-detector-centre distance in mm.
    pub fn sdd_mm(&self) -> f64 {
        norm(sub(self.detector_center_mm, self.source_mm))
    }
    /// Unit vector from the source to the detector centre (the central ray).
    pub fn w(&self) -> Vec3 {
        let d = sub(self.detector_center_mm, self.source_mm);
        scale(d, 1.0 / norm(d))
    }
    /// Distance in mm from the source to the rotation (z) axis along the central ray.
    pub fn sid_mm(&self) -> f64 {
        let iso = [0.0, 0.0, self.source_mm[2]];
        dot(sub(iso, self.source_mm), self.w())
    }
}

/// A whole acquisition's geometry: the beam, the detector, every view (in the scanner frame)
/// and where the scanner frame sits in the world its images are stated in. Build it with
/// [`ScanGeometry::new`] or a [`ScanProtocol`]; it is validated once, then trusted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScanGeometry {
    pub beam: Beam,
    /// The patient position (world frame DICOM LPS), or RTK for data from RTK.
    #[serde(default)]
    pub frame: ScanFrame,
    pub detector: Detector,
    pub views: Vec<ViewGeometry>,
}

impl ScanGeometry {
    /// Validates and wraps a geometry of a head-first supine patient.
    pub fn new(beam: Beam, detector: Detector, views: Vec<ViewGeometry>) -> Result<Self> {
        let g = ScanGeometry { beam, frame: ScanFrame::default(), detector, views };
        g.validate()?;
        Ok(g)
    }

    /// The same acquisition with its scanner frame placed in another world.
    pub fn in_frame(self, frame: ScanFrame) -> Self {
        ScanGeometry { frame, ..self }
    }

    /// Checks every field once, with an error naming the field and its value.
    pub fn validate(&self) -> Result<()> {
        self.detector.validate()?;
        if self.views.is_empty() {
            return Err(CoreError::invalid("views", "[]", "a scan needs at least one view"));
        }
        if self.beam == Beam::Parallel && self.detector.shape == DetectorShape::Cylindrical {
            return Err(CoreError::invalid("detector.shape", "cylindrical", "a parallel beam needs a flat detector"));
        }
        for (i, view) in self.views.iter().enumerate() {
            let f = |name: &str| format!("views[{i}].{name}");
            for (name, v) in [
                ("source_mm", view.source_mm),
                ("detector_center_mm", view.detector_center_mm),
                ("u", view.u),
                ("v", view.v),
            ] {
                if v.iter().any(|c| !c.is_finite()) {
                    return Err(CoreError::invalid(f(name), format!("{v:?}"), "must be finite"));
                }
            }
            for (name, v) in [("angle_rad", view.angle_rad), ("time_s", view.time_s)] {
                if !v.is_finite() {
                    return Err(CoreError::invalid(f(name), v, "must be finite"));
                }
            }
            for (name, v) in [("u", view.u), ("v", view.v)] {
                if (norm(v) - 1.0).abs() > 1e-6 {
                    return Err(CoreError::invalid(f(name), format!("{v:?}"), "must be a unit vector"));
                }
            }
            if dot(view.u, view.v).abs() > 1e-6 {
                return Err(CoreError::invalid(f("v"), format!("{:?}", view.v), "must be perpendicular to u"));
            }
            let sdd = view.sdd_mm();
            if sdd.is_nan() || sdd <= 1e-6 {
                return Err(CoreError::invalid(
                    f("detector_center_mm"),
                    format!("{:?}", view.detector_center_mm),
                    "coincides with the source",
                ));
            }
            let w = view.w();
            if dot(w, view.u).abs() > 1e-6 || dot(w, view.v).abs() > 1e-6 {
                return Err(CoreError::invalid(
                    f("detector_center_mm"),
                    format!("{:?}", view.detector_center_mm),
                    "the central ray (source → detector centre) must be perpendicular to u and v",
                ));
            }
            if self.beam == Beam::Cone && self.detector.shape == DetectorShape::Cylindrical {
                let half_arc = 0.5 * self.detector.n_cols as f64 * self.detector.pixel_u_mm / sdd
                    + self.detector.offset_u_mm.abs() / sdd;
                if half_arc >= 0.5 * PI {
                    return Err(CoreError::invalid(
                        "detector.pixel_u_mm",
                        self.detector.pixel_u_mm,
                        format!(
                            "the cylindrical detector spans {:.1}° on each side; it must be under 90°",
                            half_arc.to_degrees()
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    pub fn n_views(&self) -> usize {
        self.views.len()
    }

    /// Projection array shape `[view][row][col]`.
    pub fn projection_shape(&self) -> [usize; 3] {
        [self.views.len(), self.detector.n_rows, self.detector.n_cols]
    }

    /// The geometry of a contiguous subset of views.
    pub fn subset(&self, range: std::ops::Range<usize>) -> ScanGeometry {
        ScanGeometry {
            beam: self.beam,
            frame: self.frame,
            detector: self.detector.clone(),
            views: self.views[range].to_vec(),
        }
    }

    /// World position (mm) of detector pixel (row, col) of a view (fractional indices allowed).
    pub fn pixel_position(&self, view: usize, row: f64, col: f64) -> Vec3 {
        let g = &self.views[view];
        let uc = self.detector.col_to_u(col);
        let vc = self.detector.row_to_v(row);
        match self.detector.shape {
            DetectorShape::Flat => add(g.detector_center_mm, add(scale(g.u, uc), scale(g.v, vc))),
            DetectorShape::Cylindrical => {
                let r = g.sdd_mm();
                let gamma = uc / r;
                let w = g.w();
                let inplane = add(scale(w, r * gamma.cos()), scale(g.u, r * gamma.sin()));
                add(add(g.source_mm, inplane), scale(g.v, vc))
            }
        }
    }

    /// The ray of pixel (row, col): a start point and a unit direction. For a cone beam the
    /// start is the source; for a parallel beam it is the pixel moved back by 2·SDD.
    pub fn ray(&self, view: usize, row: f64, col: f64) -> (Vec3, Vec3) {
        let p = self.pixel_position(view, row, col);
        match self.beam {
            Beam::Cone => {
                let s = self.views[view].source_mm;
                let d = sub(p, s);
                (s, scale(d, 1.0 / norm(d)))
            }
            Beam::Parallel => {
                let g = &self.views[view];
                let w = g.w();
                (sub(p, scale(w, 2.0 * g.sdd_mm())), w)
            }
        }
    }

    /// Fan angle (radians) of column `col`: the angle between the central ray and the ray to
    /// that column in the plane of u, positive towards +u. Zero for a parallel beam.
    pub fn fan_angle(&self, view: usize, col: f64) -> f64 {
        let uc = self.detector.col_to_u(col);
        let sdd = self.views[view].sdd_mm();
        match (self.beam, self.detector.shape) {
            (Beam::Parallel, _) => 0.0,
            (Beam::Cone, DetectorShape::Flat) => (uc / sdd).atan(),
            (Beam::Cone, DetectorShape::Cylindrical) => uc / sdd,
        }
    }

    /// Largest |fan angle| of a detector column centre (radians).
    pub fn max_fan_angle(&self) -> f64 {
        let n = self.detector.n_cols as f64;
        self.fan_angle(0, 0.0).abs().max(self.fan_angle(0, n - 1.0).abs())
    }

    /// The view angles unwrapped into a monotone sequence (radians).
    pub fn unwrapped_angles(&self) -> Vec<f64> {
        let mut out = Vec::with_capacity(self.views.len());
        let mut prev: Option<f64> = None;
        let mut shift = 0.0;
        for v in &self.views {
            let mut a = v.angle_rad + shift;
            if let Some(p) = prev {
                while a - p > PI {
                    a -= 2.0 * PI;
                    shift -= 2.0 * PI;
                }
                while a - p < -PI {
                    a += 2.0 * PI;
                    shift += 2.0 * PI;
                }
            }
            out.push(a);
            prev = Some(a);
        }
        out
    }

    /// Whether every view has v along ±z and its central ray in the x–y plane (all presets do):
    /// the condition for the fast backprojection path.
    pub fn is_axial_aligned(&self) -> bool {
        self.views.iter().all(|g| {
            let w = g.w();
            (g.v[2].abs() - 1.0).abs() < 1e-9 && g.u[2].abs() < 1e-9 && w[2].abs() < 1e-9
        })
    }
}

/// How a scan is acquired, as a user writes it in a protocol file; [`ScanProtocol::build`] turns
/// it into the per-view geometry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScanProtocol {
    pub beam: Beam,
    /// How the patient lies (DICOM Patient Position: HFS, FFS, HFP, FFP, HFDL, HFDR, FFDL,
    /// FFDR); images are stated in the patient's LPS frame. Default: head first supine.
    #[serde(default)]
    pub patient_position: PatientPosition,
    /// Source to rotation axis, mm.
    pub sid_mm: f64,
    /// Source to detector centre, mm.
    pub sdd_mm: f64,
    pub detector: Detector,
    /// Views acquired per full rotation (360°).
    pub views_per_rotation: usize,
    /// Angular range in degrees. Absent: 360° for a full scan, 180° + fan angle for a short
    /// scan, 180° for a parallel beam. Over 360° only with a helical pitch.
    #[serde(default)]
    pub arc_deg: Option<f64>,
    /// Short scan: the default arc becomes 180° plus the full fan angle.
    #[serde(default)]
    pub short_scan: bool,
    /// Gantry angle of the first view, degrees.
    #[serde(default)]
    pub start_angle_deg: f64,
    /// Helical pitch (table feed per rotation / collimated width at isocentre); absent: axial.
    #[serde(default)]
    pub helical_pitch: Option<f64>,
    /// Table (source z) position of the first view, mm.
    #[serde(default)]
    pub start_z_mm: f64,
    /// Seconds per rotation.
    #[serde(default = "default_rotation_time")]
    pub rotation_time_s: f64,
}

fn default_rotation_time() -> f64 {
    1.0
}

impl ScanProtocol {
    /// The wide-detector clinical scanner: SID 625 mm, SDD 1100 mm, a cylindrical detector of
    /// 888 columns spanning a 500 mm field of view × 256 rows of 0.625 mm at isocentre
    /// (160 mm coverage), quarter-detector offset, 0.28 s and 1000 views per rotation.
    pub fn clinical_wide_detector() -> Self {
        let sid = 625.0;
        let sdd = 1100.0;
        let fan = 2.0 * (250.0f64 / sid).asin();
        let n_cols = 888;
        let pixel_u = sdd * fan / n_cols as f64;
        ScanProtocol {
            beam: Beam::Cone,
            patient_position: PatientPosition::Hfs,
            sid_mm: sid,
            sdd_mm: sdd,
            detector: Detector {
                shape: DetectorShape::Cylindrical,
                n_cols,
                n_rows: 256,
                pixel_u_mm: pixel_u,
                pixel_v_mm: 0.625 * sdd / sid,
                offset_u_mm: 0.25 * pixel_u,
                offset_v_mm: 0.0,
            },
            views_per_rotation: 1000,
            arc_deg: None,
            short_scan: false,
            start_angle_deg: 0.0,
            helical_pitch: None,
            start_z_mm: 0.0,
            rotation_time_s: 0.28,
        }
    }

    /// A circular cone-beam scan with a flat detector.
    pub fn circular_flat(
        sid_mm: f64,
        sdd_mm: f64,
        n_views: usize,
        n_cols: usize,
        n_rows: usize,
        pixel_mm: f64,
    ) -> Self {
        ScanProtocol {
            beam: Beam::Cone,
            patient_position: PatientPosition::Hfs,
            sid_mm,
            sdd_mm,
            detector: Detector {
                shape: DetectorShape::Flat,
                n_cols,
                n_rows,
                pixel_u_mm: pixel_mm,
                pixel_v_mm: pixel_mm,
                offset_u_mm: 0.0,
                offset_v_mm: 0.0,
            },
            views_per_rotation: n_views,
            arc_deg: None,
            short_scan: false,
            start_angle_deg: 0.0,
            helical_pitch: None,
            start_z_mm: 0.0,
            rotation_time_s: 1.0,
        }
    }

    /// Full fan angle (radians) of the detector seen from the source.
    pub fn fan_angle_rad(&self) -> f64 {
        let d = &self.detector;
        let half_w = 0.5 * d.n_cols as f64 * d.pixel_u_mm;
        let (a, b) = (half_w + d.offset_u_mm, half_w - d.offset_u_mm);
        match (self.beam, d.shape) {
            (Beam::Parallel, _) => 0.0,
            (Beam::Cone, DetectorShape::Flat) => 2.0 * (a.max(b) / self.sdd_mm).atan(),
            (Beam::Cone, DetectorShape::Cylindrical) => 2.0 * a.max(b) / self.sdd_mm,
        }
    }

    /// The angular range that will be acquired, degrees.
    pub fn effective_arc_deg(&self) -> f64 {
        match self.arc_deg {
            Some(a) => a,
            None if self.beam == Beam::Parallel => 180.0,
            None if self.short_scan => 180.0 + self.fan_angle_rad().to_degrees(),
            None => 360.0,
        }
    }

    /// Builds and validates the per-view geometry.
    pub fn build(&self) -> Result<ScanGeometry> {
        for (name, v) in [("sid_mm", self.sid_mm), ("sdd_mm", self.sdd_mm)] {
            if !(v.is_finite() && v > 0.0) {
                return Err(CoreError::invalid(name, v, "must be finite and positive"));
            }
        }
        if self.sdd_mm <= self.sid_mm {
            return Err(CoreError::invalid(
                "sdd_mm",
                self.sdd_mm,
                format!("the detector must lie beyond the rotation axis (sid_mm = {})", self.sid_mm),
            ));
        }
        if self.views_per_rotation == 0 {
            return Err(CoreError::invalid("views_per_rotation", 0, "must be at least 1"));
        }
        for (name, v) in [("start_angle_deg", self.start_angle_deg), ("start_z_mm", self.start_z_mm)] {
            if !v.is_finite() {
                return Err(CoreError::invalid(name, v, "must be finite"));
            }
        }
        if !(self.rotation_time_s.is_finite() && self.rotation_time_s > 0.0) {
            return Err(CoreError::invalid("rotation_time_s", self.rotation_time_s, "must be finite and positive"));
        }
        let arc = self.effective_arc_deg();
        let max_arc = if self.helical_pitch.is_some() { 360.0 * 1000.0 } else { 360.0 };
        if !(arc.is_finite() && arc > 0.0 && arc <= max_arc + 1e-9) {
            return Err(CoreError::invalid(
                "arc_deg",
                arc,
                "must be positive and at most 360 (more only for a helical scan)",
            ));
        }
        if let Some(p) = self.helical_pitch {
            if !(p.is_finite() && p > 0.0) {
                return Err(CoreError::invalid("helical_pitch", p, "must be finite and positive"));
            }
        }
        // Views are spaced 360°/views_per_rotation. A partial arc samples both of its ends (a
        // short scan must cover 180° + fan); whole rotations sample each angle once.
        let step = 2.0 * PI / self.views_per_rotation as f64;
        let per_step = arc.to_radians() / step;
        let whole_turns = (arc / 360.0 - (arc / 360.0).round()).abs() < 1e-9;
        let n_views =
            if whole_turns { per_step.round() as usize } else { (per_step - 1e-9).ceil() as usize + 1 }.max(1);
        let collimation_mm = self.detector.n_rows as f64 * self.detector.pixel_v_mm * self.sid_mm / self.sdd_mm;
        let feed_per_rad = self.helical_pitch.map_or(0.0, |p| p * collimation_mm / (2.0 * PI));
        let views = (0..n_views)
            .map(|i| {
                let t = i as f64 * step;
                let beta = self.start_angle_deg.to_radians() + t;
                let (s, c) = beta.sin_cos();
                let z = self.start_z_mm + feed_per_rad * t;
                let source = [self.sid_mm * s, -self.sid_mm * c, z];
                let w = [-s, c, 0.0];
                ViewGeometry {
                    source_mm: source,
                    detector_center_mm: add(source, scale(w, self.sdd_mm)),
                    u: [c, s, 0.0],
                    v: [0.0, 0.0, 1.0],
                    angle_rad: beta,
                    time_s: self.rotation_time_s * t / (2.0 * PI),
                }
            })
            .collect();
        Ok(ScanGeometry::new(self.beam, self.detector.clone(), views)?
            .in_frame(ScanFrame::Patient(self.patient_position)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clinical_preset_matches_the_datasheet() {
        let p = ScanProtocol::clinical_wide_detector();
        let g = p.build().unwrap();
        assert_eq!(g.n_views(), 1000);
        assert_eq!(g.projection_shape(), [1000, 256, 888]);
        // 160 mm coverage at isocentre.
        let cov = g.detector.n_rows as f64 * g.detector.pixel_v_mm * p.sid_mm / p.sdd_mm;
        assert!((cov - 160.0).abs() < 1e-9, "{cov}");
        // The edge ray of the fan passes 250 mm from the isocentre (500 mm field of view).
        let half_fan = 0.5 * g.detector.n_cols as f64 * g.detector.pixel_u_mm / p.sdd_mm;
        assert!((p.sid_mm * half_fan.sin() - 250.0).abs() < 1e-9);
        assert!((g.views[500].time_s - 0.14).abs() < 1e-12);
        assert!(g.is_axial_aligned());
        for v in &g.views {
            assert!((v.sid_mm() - 625.0).abs() < 1e-9);
            assert!((v.sdd_mm() - 1100.0).abs() < 1e-9);
        }
    }

    #[test]
    fn cylindrical_pixels_lie_on_the_arc() {
        let g = ScanProtocol::clinical_wide_detector().build().unwrap();
        for col in [0.0, 100.5, 887.0] {
            let p = g.pixel_position(3, 128.0, col);
            let s = g.views[3].source_mm;
            let d = sub(p, s);
            let r_in_plane = (d[0] * d[0] + d[1] * d[1]).sqrt();
            assert!((r_in_plane - 1100.0).abs() < 1e-9, "{r_in_plane}");
        }
    }

    #[test]
    fn short_scan_and_helical_presets() {
        let mut p = ScanProtocol::circular_flat(1000.0, 1500.0, 360, 256, 256, 1.0);
        p.short_scan = true;
        let fan = p.fan_angle_rad().to_degrees();
        let g = p.build().unwrap();
        assert_eq!(g.n_views(), (180.0 + fan).ceil() as usize + 1);
        let span = g.unwrapped_angles()[g.n_views() - 1] - g.unwrapped_angles()[0];
        assert!(span.to_degrees() >= 180.0 + fan && span.to_degrees() < 181.0 + fan, "{span}");
        let mut h = ScanProtocol::clinical_wide_detector();
        h.helical_pitch = Some(0.5);
        h.arc_deg = Some(720.0);
        let g = h.build().unwrap();
        assert_eq!(g.n_views(), 2000);
        let dz = g.views[1000].source_mm[2] - g.views[0].source_mm[2];
        assert!((dz - 80.0).abs() < 1e-9, "{dz}");
    }

    #[test]
    fn impossible_geometry_names_field_and_value() {
        let mut p = ScanProtocol::circular_flat(1000.0, 900.0, 10, 8, 8, 1.0);
        let e = p.build().unwrap_err().to_string();
        assert!(e.contains("sdd_mm") && e.contains("900"), "{e}");
        p.sdd_mm = 1500.0;
        p.detector.pixel_u_mm = -1.0;
        let e = p.build().unwrap_err().to_string();
        assert!(e.contains("detector.pixel_u_mm") && e.contains("-1"), "{e}");
        p.detector.pixel_u_mm = 1.0;
        p.arc_deg = Some(f64::NAN);
        assert!(p.build().unwrap_err().to_string().contains("arc_deg"));
        let mut g = ScanProtocol::circular_flat(1000.0, 1500.0, 10, 8, 8, 1.0).build().unwrap();
        g.views[4].u = [0.0, 0.0, 1.0];
        let e = g.validate().unwrap_err().to_string();
        assert!(e.contains("views[4]"), "{e}");
    }

    #[test]
    fn geometry_round_trips_through_toml() {
        let g = ScanProtocol::circular_flat(1000.0, 1500.0, 4, 8, 6, 1.0).build().unwrap();
        let text = toml::to_string(&g).unwrap();
        let back: ScanGeometry = toml::from_str(&text).unwrap();
        assert_eq!(g, back);
        let p = ScanProtocol::clinical_wide_detector();
        let back: ScanProtocol = toml::from_str(&toml::to_string(&p).unwrap()).unwrap();
        assert_eq!(p, back);
    }
}
