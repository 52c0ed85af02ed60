//! Volumes and projection stacks to and from files, chosen by extension.

use crate::atomic::write_bytes;
use crate::error::{IoError, Result};
use crate::metaimage::{read_mha, write_mha, MetaImage};
use crate::nifti_io::{read_nifti, write_nifti};
use gantry_core::{ProjectionStack, ScanGeometry, Volume, VolumeGeometry};
use ndarray::Array3;
use std::path::{Path, PathBuf};

fn lower_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().to_ascii_lowercase()).unwrap_or_default()
}

/// Writes a volume as NIfTI (.nii, .nii.gz) or MetaImage (.mha), by extension, with its frame
/// and quantity.
pub fn write_volume(path: &Path, volume: &Volume, description: &str) -> Result<()> {
    let name = lower_name(path);
    if name.ends_with(".nii") || name.ends_with(".nii.gz") {
        write_nifti(path, volume, description)
    } else if name.ends_with(".mha") {
        let g = &volume.geometry;
        let img = MetaImage {
            dims: g.dims,
            spacing: g.spacing_mm,
            origin: g.origin_mm,
            direction: g.direction,
            data: volume.data.as_standard_layout().iter().copied().collect(),
            frame: g.frame,
            quantity: volume.quantity,
        };
        write_mha(path, &img)
    } else {
        Err(IoError::format(path, "extension", name, "write volumes as .nii, .nii.gz or .mha"))
    }
}

/// Reads a volume from NIfTI (.nii, .nii.gz) or MetaImage (.mha, .mhd), restoring the frame and
/// quantity Gantry recorded (LPS and unspecified for files that do not say).
pub fn read_volume(path: &Path) -> Result<Volume> {
    let name = lower_name(path);
    if name.ends_with(".nii") || name.ends_with(".nii.gz") {
        read_nifti(path)
    } else if name.ends_with(".mha") || name.ends_with(".mhd") {
        let img = read_mha(path)?;
        let geometry = VolumeGeometry::new(img.dims, img.spacing, img.origin, img.direction)
            .map_err(|e| IoError::core(path, e))?
            .in_frame(img.frame);
        let [nx, ny, nz] = img.dims;
        let data = Array3::from_shape_vec((nz, ny, nx), img.data).map_err(|e| IoError::format(path, "data", e, ""))?;
        Volume::of(img.quantity, geometry, data).map_err(|e| IoError::core(path, e))
    } else {
        Err(IoError::format(path, "extension", name, "read volumes from .nii, .nii.gz, .mha or .mhd"))
    }
}

/// The geometry file that goes with a projection file: `name.mha` → `name.geometry.toml`.
pub fn geometry_path_for(projections: &Path) -> PathBuf {
    let name = projections.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let stem = name.strip_suffix(".mha").or(name.strip_suffix(".mhd")).unwrap_or(&name);
    projections.with_file_name(format!("{stem}.geometry.toml"))
}

/// Writes a scan geometry as readable TOML.
pub fn write_geometry(path: &Path, geometry: &ScanGeometry) -> Result<()> {
    let text =
        toml::to_string(geometry).map_err(|e| IoError::format(path, "geometry", e, "could not be serialised"))?;
    let header = "# Gantry scan geometry: one [[views]] entry per projection (mm, radians, seconds).\n";
    write_bytes(path, format!("{header}{text}").as_bytes())
}

/// Reads and validates a scan geometry: Gantry's TOML, or RTK's geometry XML (`.xml`).
pub fn read_geometry(path: &Path) -> Result<ScanGeometry> {
    let text = std::fs::read_to_string(path).map_err(|e| IoError::io(path, e))?;
    if lower_name(path).ends_with(".xml") {
        return Err(IoError::format(
            path,
            "geometry",
            "RTK XML",
            "an RTK geometry needs its projection image for the detector: read it with read_projections",
        ));
    }
    let g: ScanGeometry = crate::parse_toml(path, &text, "scan geometry")?;
    g.validate().map_err(|e| IoError::core(path, e))?;
    Ok(g)
}

/// Writes projections as MetaImage (x = column, y = row, z = view; spacing = pixel pitch;
/// origin = detector coordinates of pixel (0, 0), as RTK expects) and the geometry beside it.
pub fn write_projections(path: &Path, stack: &ProjectionStack) -> Result<()> {
    let g = &stack.geometry;
    let d = &g.detector;
    let [nv, nr, nc] = g.projection_shape();
    let img = MetaImage {
        dims: [nc, nr, nv],
        spacing: [d.pixel_u_mm, d.pixel_v_mm, 1.0],
        origin: [d.col_to_u(0.0), d.row_to_v(0.0), 0.0],
        direction: gantry_core::volume::IDENTITY,
        data: stack.data.as_standard_layout().iter().copied().collect(),
        frame: gantry_core::Frame::Lps,
        quantity: gantry_core::Quantity::Unspecified,
    };
    write_mha(path, &img)?;
    write_geometry(&geometry_path_for(path), g)
}

/// Reads projections from MetaImage with their geometry file (Gantry TOML or RTK XML); the
/// geometry defaults to the one beside the projections. Sizes must agree.
pub fn read_projections(path: &Path, geometry: Option<&Path>) -> Result<ProjectionStack> {
    let gpath = geometry.map(Path::to_path_buf).unwrap_or_else(|| geometry_path_for(path));
    let img = read_mha(path)?;
    let [nc, nr, nv] = img.dims;
    let g = if gpath.extension().is_some_and(|e| e.eq_ignore_ascii_case("xml")) {
        // RTK: the image's spacing and origin place the pixels on the detector.
        let text = std::fs::read_to_string(&gpath).map_err(|e| IoError::io(&gpath, e))?;
        let rtk = crate::rtk::parse_rtk_xml(&gpath, &text)?;
        crate::rtk::rtk_to_scan_geometry(&gpath, &rtk, &img)?
    } else {
        let g = read_geometry(&gpath)?;
        let d = &g.detector;
        if [nv, nr, nc] != g.projection_shape() {
            return Err(IoError::format(
                path,
                "DimSize",
                format!("{nc} {nr} {nv}"),
                format!(
                    "does not match the geometry {} ({} columns × {} rows × {} views)",
                    gpath.display(),
                    d.n_cols,
                    d.n_rows,
                    g.n_views()
                ),
            ));
        }
        if (img.spacing[0] - d.pixel_u_mm).abs() > 1e-6 * d.pixel_u_mm
            || (img.spacing[1] - d.pixel_v_mm).abs() > 1e-6 * d.pixel_v_mm
        {
            return Err(IoError::format(
                path,
                "ElementSpacing",
                format!("{} {}", img.spacing[0], img.spacing[1]),
                format!("does not match the geometry's pixel pitch {} × {} mm", d.pixel_u_mm, d.pixel_v_mm),
            ));
        }
        g
    };
    let data = Array3::from_shape_vec((nv, nr, nc), img.data).map_err(|e| IoError::format(path, "data", e, ""))?;
    ProjectionStack::new(g, data).map_err(|e| IoError::core(path, e))
}
