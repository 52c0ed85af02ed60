//! Volumes to and from NIfTI-1 (.nii, .nii.gz). The one place where Gantry's LPS frame meets
//! NIfTI's RAS frame: x and y change sign, z stays (RTK-frame volumes are treated as ITK treats
//! its physical space, the same flip). The quantity goes into `intent_name` (its code, e.g.
//! `hu`, `mu_per_mm`, `ml_100g_min`) and the frame into `aux_file` (`gantry frame=LPS`).

use crate::atomic::write_atomically;
use crate::error::{IoError, Result};
use gantry_core::{Frame, Quantity, Volume, VolumeGeometry, VolumeSeries};
use nalgebra::Matrix4;
use ndarray::Ix3;
use nifti::writer::WriterOptions;
use nifti::{IntoNdArray, NiftiHeader, NiftiObject, ReaderOptions, XForm};
use std::path::Path;

/// The index → RAS affine of a volume.
pub fn ras_affine(g: &VolumeGeometry) -> Matrix4<f64> {
    let flip = [-1.0, -1.0, 1.0];
    let mut m = Matrix4::identity();
    for r in 0..3 {
        for c in 0..3 {
            m[(r, c)] = flip[r] * g.direction[r][c] * g.spacing_mm[c];
        }
        m[(r, 3)] = flip[r] * g.origin_mm[r];
    }
    m
}

/// Gantry's mark in `aux_file`, before the frame code.
const AUX_PREFIX: &str = "gantry frame=";

/// A header with the grid's geometry in sform and qform (scanner anatomical), spacing in mm, the
/// quantity and the frame.
fn header_for(g: &VolumeGeometry, quantity: Quantity, description: &str) -> NiftiHeader {
    let mut header = NiftiHeader::default();
    let affine = ras_affine(g);
    header.set_sform(&affine, XForm::ScannerAnat);
    header.set_qform(&affine, XForm::ScannerAnat);
    header.pixdim[1..4].copy_from_slice(&[g.spacing_mm[0] as f32, g.spacing_mm[1] as f32, g.spacing_mm[2] as f32]);
    header.xyzt_units = 2; // millimetres
    let mut d = description.as_bytes().to_vec();
    d.truncate(79);
    header.descrip = d;
    let mut intent = [0u8; 16];
    let code = quantity.code().as_bytes();
    intent[..code.len()].copy_from_slice(code);
    header.intent_name = intent;
    let mut aux = [0u8; 24];
    let mark = format!("{AUX_PREFIX}{}", g.frame.code());
    aux[..mark.len()].copy_from_slice(mark.as_bytes());
    header.aux_file = aux;
    header
}

fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).trim().to_string()
}

/// The quantity and frame Gantry recorded (unspecified and LPS for other files).
fn quantity_and_frame(path: &Path, h: &NiftiHeader) -> Result<(Quantity, Frame)> {
    let aux = c_string(&h.aux_file);
    let Some(frame) = aux.strip_prefix(AUX_PREFIX) else {
        return Ok((Quantity::Unspecified, Frame::Lps));
    };
    let frame = Frame::parse(frame).map_err(|e| IoError::core(path, e))?;
    let quantity = Quantity::from_code(&c_string(&h.intent_name)).map_err(|e| IoError::core(path, e))?;
    Ok((quantity, frame))
}

/// Writes a volume as NIfTI-1, float32, with its geometry in both sform and qform (scanner
/// anatomical). `.nii.gz` is compressed.
pub fn write_nifti(path: &Path, volume: &Volume, description: &str) -> Result<()> {
    let header = header_for(&volume.geometry, volume.quantity, description);
    write_atomically(path, |tmp| {
        WriterOptions::new(tmp)
            .reference_header(&header)
            .write_nifti(&volume.data.t())
            .map_err(|e| IoError::Nifti { path: path.to_owned(), source: e })
    })
}

/// Reads a 3D NIfTI-1 volume (any data type, scaled by scl_slope/inter) into LPS.
pub fn read_nifti(path: &Path) -> Result<Volume> {
    let obj = ReaderOptions::new().read_file(path).map_err(|e| IoError::Nifti { path: path.to_owned(), source: e })?;
    let h = obj.header().clone();
    let ndim = h.dim[0];
    if !(3..=4).contains(&ndim) || (ndim == 4 && h.dim[4] > 1) {
        return Err(IoError::format(
            path,
            "dim",
            format!("{:?}", &h.dim[..(ndim as usize + 1).min(8)]),
            "a volume must have 3 dimensions",
        ));
    }
    let arr =
        obj.into_volume().into_ndarray::<f32>().map_err(|e| IoError::Nifti { path: path.to_owned(), source: e })?;
    let (nx, ny, nz) = (h.dim[1] as usize, h.dim[2] as usize, h.dim[3] as usize);
    let arr = arr
        .into_shape_clone(ndarray::IxDyn(&[nx, ny, nz]))
        .map_err(|e| IoError::format(path, "data", e, "does not match dim"))?
        .into_dimensionality::<Ix3>()
        .map_err(|e| IoError::format(path, "data", e, "is not 3D"))?;
    // [x][y][z] → [z][y][x], made contiguous.
    let data = arr.reversed_axes().as_standard_layout().to_owned();
    let (quantity, frame) = quantity_and_frame(path, &h)?;
    let geometry = geometry_of(path, &h)?.in_frame(frame);
    Volume::of(quantity, geometry, data).map_err(|e| IoError::core(path, e))
}

/// The LPS grid a NIfTI header describes (sform, else qform, else pixdim).
fn geometry_of(path: &Path, h: &NiftiHeader) -> Result<VolumeGeometry> {
    let (nx, ny, nz) = (h.dim[1] as usize, h.dim[2] as usize, h.dim[3] as usize);
    let affine: Matrix4<f64> = if h.sform_code > 0 {
        h.sform_affine()
    } else if h.qform_code > 0 {
        h.qform_affine()
    } else {
        Matrix4::from_diagonal(&nalgebra::Vector4::new(
            -(h.pixdim[1] as f64),
            -(h.pixdim[2] as f64),
            h.pixdim[3] as f64,
            1.0,
        ))
    };
    let flip = [-1.0, -1.0, 1.0];
    let mut spacing = [0.0; 3];
    let mut direction = [[0.0; 3]; 3];
    for c in 0..3 {
        let col: Vec<f64> = (0..3).map(|r| flip[r] * affine[(r, c)]).collect();
        let n = (col[0] * col[0] + col[1] * col[1] + col[2] * col[2]).sqrt();
        spacing[c] = n;
        for r in 0..3 {
            direction[r][c] = if n > 0.0 { col[r] / n } else { 0.0 };
        }
    }
    let origin = [flip[0] * affine[(0, 3)], flip[1] * affine[(1, 3)], affine[(2, 3)]];
    // The affine is stored in f32: tidy directions to the nearest orthonormal values.
    for row in direction.iter_mut() {
        for v in row.iter_mut() {
            if (v.abs() - 1.0).abs() < 1e-6 {
                *v = v.signum();
            } else if v.abs() < 1e-6 {
                *v = 0.0;
            }
        }
    }
    VolumeGeometry::new([nx, ny, nz], spacing, origin, direction).map_err(|e| IoError::core(path, e))
}

/// Seconds per unit of a NIfTI time axis (xyzt_units bits 3–5: s, ms, µs).
fn seconds_per_time_unit(xyzt_units: u8) -> Option<f64> {
    match xyzt_units & 0x38 {
        8 => Some(1.0),
        16 => Some(1e-3),
        24 => Some(1e-6),
        0 => Some(1.0),
        _ => None,
    }
}

/// Writes a dynamic series as a 4D NIfTI-1 (float32, LPS → RAS as for volumes). NIfTI holds one
/// frame interval: the series must be sampled uniformly (within 1 %); the first time goes to
/// `toffset`.
pub fn write_nifti_series(path: &Path, series: &VolumeSeries, description: &str) -> Result<()> {
    let t = &series.times_s;
    let dt = if t.len() > 1 { (t[t.len() - 1] - t[0]) / (t.len() - 1) as f64 } else { 1.0 };
    if let Some(w) = t.windows(2).find(|w| ((w[1] - w[0]) - dt).abs() > 0.01 * dt) {
        return Err(IoError::format(
            path,
            "frame interval (s)",
            w[1] - w[0],
            format!("NIfTI stores one interval and the series' mean is {dt:.3} s"),
        ));
    }
    let mut header = header_for(&series.geometry, series.quantity, description);
    header.pixdim[4] = dt as f32;
    header.toffset = t[0] as f32;
    header.xyzt_units = 2 | 8; // millimetres, seconds
    write_atomically(path, |tmp| {
        WriterOptions::new(tmp)
            .reference_header(&header)
            .write_nifti(&series.data.t())
            .map_err(|e| IoError::Nifti { path: path.to_owned(), source: e })
    })
}

/// Reads a 4D NIfTI-1 (x, y, z, t) as a dynamic series, frame t at toffset + t·`pixdim[4]`
/// seconds; `times_s` overrides them (one per frame).
pub fn read_nifti_series(path: &Path, times_s: Option<Vec<f64>>) -> Result<VolumeSeries> {
    let obj = ReaderOptions::new().read_file(path).map_err(|e| IoError::Nifti { path: path.to_owned(), source: e })?;
    let h = obj.header().clone();
    if h.dim[0] != 4 {
        return Err(IoError::format(
            path,
            "dim",
            format!("{:?}", &h.dim[..(h.dim[0] as usize + 1).min(8)]),
            "a perfusion series must have 4 dimensions (x, y, z, t)",
        ));
    }
    let (nx, ny, nz, nt) = (h.dim[1] as usize, h.dim[2] as usize, h.dim[3] as usize, h.dim[4] as usize);
    let times = match times_s {
        Some(t) => {
            if t.len() != nt {
                return Err(IoError::format(path, "frame times", t.len(), format!("the file has {nt} frames")));
            }
            t
        }
        None => {
            let unit = seconds_per_time_unit(h.xyzt_units).ok_or_else(|| {
                IoError::format(path, "xyzt_units", h.xyzt_units, "the time axis is not in s, ms or µs")
            })?;
            let dt = h.pixdim[4] as f64 * unit;
            if !(dt.is_finite() && dt > 0.0) {
                return Err(IoError::format(
                    path,
                    "pixdim[4] (frame interval)",
                    h.pixdim[4],
                    "must be positive; give the frame times instead",
                ));
            }
            (0..nt).map(|i| h.toffset as f64 * unit + i as f64 * dt).collect()
        }
    };
    let (quantity, frame) = quantity_and_frame(path, &h)?;
    let geometry = geometry_of(path, &h)?.in_frame(frame);
    let arr =
        obj.into_volume().into_ndarray::<f32>().map_err(|e| IoError::Nifti { path: path.to_owned(), source: e })?;
    let arr = arr
        .into_shape_clone(ndarray::IxDyn(&[nx, ny, nz, nt]))
        .map_err(|e| IoError::format(path, "data", e, "does not match dim"))?
        .into_dimensionality::<ndarray::Ix4>()
        .map_err(|e| IoError::format(path, "data", e, "is not 4D"))?;
    let data = arr.reversed_axes().as_standard_layout().to_owned();
    Ok(VolumeSeries::new(geometry, times, data).map_err(|e| IoError::core(path, e))?.with_quantity(quantity))
}
