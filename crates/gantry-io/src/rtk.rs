//! RTK's `ThreeDCircularProjectionGeometry` XML, so RTK users reconstruct their data unchanged.
//!
//! RTK's fixed frame turns about y with the source at +z for gantry angle 0; Gantry's scanner
//! frame turns about z with the source at −y. The fixed rotation (x, y, z)_RTK → (x, −z, y)_scanner
//! maps one onto the other, so RTK gantry angle θ is Gantry view angle β = θ. Detector
//! coordinates come from the projection image's origin and spacing, as in RTK. A geometry read
//! from RTK is in [`ScanFrame::Rtk`]: its volumes are stated in RTK's frame, as RTK states them
//! (the conversion is [`gantry_core::FrameMap`]'s).

use crate::error::{IoError, Result};
use crate::metaimage::MetaImage;
use gantry_core::geometry::Vec3;
use gantry_core::{Beam, Detector, DetectorShape, ScanFrame, ScanGeometry, ViewGeometry};
use std::path::Path;

/// One projection's nine RTK parameters (distances mm, angles degrees).
#[derive(Debug, Clone, PartialEq)]
pub struct RtkProjection {
    pub sid: f64,
    pub sdd: f64,
    pub gantry_angle: f64,
    pub out_of_plane_angle: f64,
    pub in_plane_angle: f64,
    pub source_offset: [f64; 2],
    pub projection_offset: [f64; 2],
}

/// An RTK geometry as read from XML.
#[derive(Debug, Clone, PartialEq)]
pub struct RtkGeometry {
    pub radius_cylindrical_detector: f64,
    pub projections: Vec<RtkProjection>,
}

/// RTK fixed-frame coordinates in the scanner frame.
fn to_gantry(p: Vec3) -> Vec3 {
    ScanFrame::Rtk.world_to_scanner_point(p)
}

/// Rotated-frame → fixed-frame: Mᵀ of RTK's M_R = Rz(−inplane)·Rx(−outofplane)·Ry(−gantry).
fn rotated_to_fixed(p: &RtkProjection, v: Vec3) -> Vec3 {
    let (g, o, i) = (p.gantry_angle.to_radians(), p.out_of_plane_angle.to_radians(), p.in_plane_angle.to_radians());
    // Mᵀ = Ry(g) · Rx(o) · Rz(i)
    let rz = |v: Vec3| [i.cos() * v[0] - i.sin() * v[1], i.sin() * v[0] + i.cos() * v[1], v[2]];
    let rx = |v: Vec3| [v[0], o.cos() * v[1] - o.sin() * v[2], o.sin() * v[1] + o.cos() * v[2]];
    let ry = |v: Vec3| [g.cos() * v[0] + g.sin() * v[2], v[1], -g.sin() * v[0] + g.cos() * v[2]];
    ry(rx(rz(v)))
}

/// Parses RTK's geometry XML (version 2 or 3).
pub fn parse_rtk_xml(path: &Path, text: &str) -> Result<RtkGeometry> {
    let opts = roxmltree::ParsingOptions { allow_dtd: true, ..Default::default() };
    let doc = roxmltree::Document::parse_with_options(text, opts)
        .map_err(|e| IoError::format(path, "XML", e, "not well-formed"))?;
    let root = doc.root_element();
    if root.tag_name().name() != "RTKThreeDCircularGeometry" {
        return Err(IoError::format(
            path,
            "root element",
            root.tag_name().name(),
            "expected RTKThreeDCircularGeometry",
        ));
    }
    let num = |node: roxmltree::Node, name: &str| -> Result<Option<f64>> {
        match node.children().find(|c| c.has_tag_name(name)) {
            None => Ok(None),
            Some(c) => {
                let t = c.text().unwrap_or("").trim();
                t.parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite())
                    .map(Some)
                    .ok_or_else(|| IoError::format(path, name, t, "must be a finite number"))
            }
        }
    };
    let glob = |name: &str, default: f64| -> Result<f64> { Ok(num(root, name)?.unwrap_or(default)) };
    let defaults = RtkProjection {
        sid: glob("SourceToIsocenterDistance", f64::NAN)?,
        sdd: glob("SourceToDetectorDistance", f64::NAN)?,
        gantry_angle: glob("GantryAngle", 0.0)?,
        out_of_plane_angle: glob("OutOfPlaneAngle", 0.0)?,
        in_plane_angle: glob("InPlaneAngle", 0.0)?,
        source_offset: [glob("SourceOffsetX", 0.0)?, glob("SourceOffsetY", 0.0)?],
        projection_offset: [glob("ProjectionOffsetX", 0.0)?, glob("ProjectionOffsetY", 0.0)?],
    };
    let radius = glob("RadiusCylindricalDetector", 0.0)?;
    let mut projections = Vec::new();
    for (i, node) in root.children().filter(|c| c.has_tag_name("Projection")).enumerate() {
        let d = &defaults;
        let p = RtkProjection {
            sid: num(node, "SourceToIsocenterDistance")?.unwrap_or(d.sid),
            sdd: num(node, "SourceToDetectorDistance")?.unwrap_or(d.sdd),
            gantry_angle: num(node, "GantryAngle")?.unwrap_or(d.gantry_angle),
            out_of_plane_angle: num(node, "OutOfPlaneAngle")?.unwrap_or(d.out_of_plane_angle),
            in_plane_angle: num(node, "InPlaneAngle")?.unwrap_or(d.in_plane_angle),
            source_offset: [
                num(node, "SourceOffsetX")?.unwrap_or(d.source_offset[0]),
                num(node, "SourceOffsetY")?.unwrap_or(d.source_offset[1]),
            ],
            projection_offset: [
                num(node, "ProjectionOffsetX")?.unwrap_or(d.projection_offset[0]),
                num(node, "ProjectionOffsetY")?.unwrap_or(d.projection_offset[1]),
            ],
        };
        if p.sid.is_nan() {
            return Err(IoError::format(
                path,
                format!("Projection[{i}].SourceToIsocenterDistance"),
                "missing",
                "required",
            ));
        }
        if p.sdd.is_nan() {
            return Err(IoError::format(
                path,
                format!("Projection[{i}].SourceToDetectorDistance"),
                "missing",
                "required",
            ));
        }
        projections.push(p);
    }
    if projections.is_empty() {
        return Err(IoError::format(path, "Projection", "none", "the geometry has no projections"));
    }
    Ok(RtkGeometry { radius_cylindrical_detector: radius, projections })
}

/// Builds the scan geometry of an RTK geometry and its projection image (whose spacing and
/// origin give the detector pixel pitch and coordinates).
pub fn rtk_to_scan_geometry(path: &Path, rtk: &RtkGeometry, image: &MetaImage) -> Result<ScanGeometry> {
    let [nc, nr, nv] = image.dims;
    if nv != rtk.projections.len() {
        return Err(IoError::format(
            path,
            "Projection count",
            rtk.projections.len(),
            format!("the projection image holds {nv} projections"),
        ));
    }
    let first = &rtk.projections[0];
    let parallel = first.sdd == 0.0;
    let shape = if rtk.radius_cylindrical_detector == 0.0 { DetectorShape::Flat } else { DetectorShape::Cylindrical };
    // Detector offsets are global in Gantry: each view's principal point must sit at the same
    // detector coordinates.
    let principal =
        |p: &RtkProjection| [p.source_offset[0] - p.projection_offset[0], p.source_offset[1] - p.projection_offset[1]];
    let p0 = principal(first);
    for (i, p) in rtk.projections.iter().enumerate() {
        let pp = principal(p);
        if (pp[0] - p0[0]).abs() > 1e-6 || (pp[1] - p0[1]).abs() > 1e-6 {
            return Err(IoError::format(
                path,
                format!("Projection[{i}].ProjectionOffsetX/Y − SourceOffsetX/Y"),
                format!("{:?}", [-pp[0], -pp[1]]),
                format!(
                    "differs from the first projection's {:?}: per-view detector offsets are not supported yet",
                    [-p0[0], -p0[1]]
                ),
            ));
        }
        if (p.sdd == 0.0) != parallel {
            return Err(IoError::format(
                path,
                format!("Projection[{i}].SourceToDetectorDistance"),
                p.sdd,
                "mixes parallel and cone views",
            ));
        }
        if shape == DetectorShape::Cylindrical && (rtk.radius_cylindrical_detector - p.sdd).abs() > 1e-6 * p.sdd {
            return Err(IoError::format(
                path,
                "RadiusCylindricalDetector",
                rtk.radius_cylindrical_detector,
                format!(
                    "must equal SourceToDetectorDistance ({}) : only detectors focused on the source are supported",
                    p.sdd
                ),
            ));
        }
    }
    // Detector coordinate of column c: origin_x + c·sx; Gantry measures it from the principal
    // point, so offset_u = coordinate of the array centre minus the principal point.
    let centre_u = image.origin[0] + 0.5 * (nc as f64 - 1.0) * image.spacing[0];
    let centre_v = image.origin[1] + 0.5 * (nr as f64 - 1.0) * image.spacing[1];
    let detector = Detector {
        shape,
        n_cols: nc,
        n_rows: nr,
        pixel_u_mm: image.spacing[0],
        pixel_v_mm: image.spacing[1],
        offset_u_mm: centre_u - p0[0],
        offset_v_mm: centre_v - p0[1],
    };
    let views = rtk
        .projections
        .iter()
        .map(|p| {
            let sid = p.sid;
            let (src_rot, det_rot) = if parallel {
                ([p.source_offset[0], p.source_offset[1], sid], [p.source_offset[0], p.source_offset[1], -sid])
            } else {
                ([p.source_offset[0], p.source_offset[1], sid], [p.source_offset[0], p.source_offset[1], sid - p.sdd])
            };
            let s = to_gantry(rotated_to_fixed(p, src_rot));
            let d = to_gantry(rotated_to_fixed(p, det_rot));
            let u = to_gantry(rotated_to_fixed(p, [1.0, 0.0, 0.0]));
            let v = to_gantry(rotated_to_fixed(p, [0.0, 1.0, 0.0]));
            ViewGeometry {
                source_mm: s,
                detector_center_mm: d,
                u,
                v,
                angle_rad: p.gantry_angle.to_radians(),
                time_s: 0.0,
            }
        })
        .collect();
    let beam = if parallel { Beam::Parallel } else { Beam::Cone };
    let g = ScanGeometry::new(beam, detector, views).map_err(|e| IoError::core(path, e))?.in_frame(ScanFrame::Rtk);
    Ok(g)
}

/// Writes an RTK geometry XML for a Gantry geometry whose views are RTK-expressible (every
/// view's v axis along z; flat, or cylindrical focused on the source). Used to hand the same
/// acquisition to RTK.
pub fn format_rtk_xml(g: &ScanGeometry) -> std::result::Result<String, String> {
    let d = &g.detector;
    let mut out =
        String::from("<?xml version=\"1.0\"?>\n<!DOCTYPE RTKGEOMETRY>\n<RTKThreeDCircularGeometry version=\"3\">\n");
    let sdd0 = g.views[0].sdd_mm();
    if d.shape == DetectorShape::Cylindrical {
        out += &format!("  <RadiusCylindricalDetector>{sdd0}</RadiusCylindricalDetector>\n");
    }
    for (i, v) in g.views.iter().enumerate() {
        if (v.v[2] - 1.0).abs() > 1e-9 || v.source_mm[2].abs() > 1e-9 {
            return Err(format!(
                "view {i}: only circular scans with v along +z and the source at z = 0 can be written for RTK"
            ));
        }
        let sid = v.sid_mm();
        let sdd = if g.beam == Beam::Parallel { 0.0 } else { v.sdd_mm() };
        // β from the source position: S = SID·(sin β, −cos β).
        let beta = v.source_mm[0].atan2(-v.source_mm[1]).to_degrees().rem_euclid(360.0);
        // RTK checks the projection matrix against the parameters: with no offsets and no
        // in-plane or out-of-plane angle it is M_P = [−SDD·R₀; −SDD·R₁; R₂ − SID·e₄] for the
        // rotation R = Ry(−θ), and [R₀; R₁; e₄] for a parallel beam.
        let (st, ct) = beta.to_radians().sin_cos();
        let m: [[f64; 4]; 3] = if g.beam == Beam::Parallel {
            [[ct, 0.0, -st, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
        } else {
            [[-sdd * ct, 0.0, sdd * st, 0.0], [0.0, -sdd, 0.0, 0.0], [st, 0.0, ct, -sid]]
        };
        let rows: Vec<String> =
            m.iter().map(|r| format!("      {:e} {:e} {:e} {:e}", r[0], r[1], r[2], r[3])).collect();
        out += &format!(
            "  <Projection>\n    <SourceToIsocenterDistance>{sid}</SourceToIsocenterDistance>\n    <SourceToDetectorDistance>{sdd}</SourceToDetectorDistance>\n    <GantryAngle>{beta}</GantryAngle>\n    <Matrix>\n{}\n    </Matrix>\n  </Projection>\n",
            rows.join("\n")
        );
    }
    out += "</RTKThreeDCircularGeometry>\n";
    Ok(out)
}
