//! PNG slices of a volume with a display window (centre/width, e.g. brain 40/80 HU).

use crate::atomic::write_atomically;
use crate::error::{IoError, Result};
use gantry_core::Volume;
use std::fs::File;
use std::path::Path;

/// Which plane a slice is cut in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plane {
    /// Constant z: rows along y (anterior at the top), columns along x.
    Axial,
    /// Constant y: rows along z (top of the volume at the top), columns along x.
    Coronal,
    /// Constant x: rows along z, columns along y.
    Sagittal,
}

/// The 8-bit grey values of a slice under a window: `center ± width/2` maps to 0…255.
pub fn window_slice(
    volume: &Volume,
    plane: Plane,
    index: usize,
    center: f64,
    width: f64,
) -> Result<(usize, usize, Vec<u8>)> {
    let (nz, ny, nx) = volume.data.dim();
    let n = match plane {
        Plane::Axial => nz,
        Plane::Coronal => ny,
        Plane::Sagittal => nx,
    };
    if index >= n {
        return Err(IoError::format(
            Path::new("<slice>"),
            "slice index",
            index,
            format!("must be below {n} for {plane:?}"),
        ));
    }
    if !(width.is_finite() && width > 0.0 && center.is_finite()) {
        return Err(IoError::format(
            Path::new("<slice>"),
            "window",
            format!("{center}/{width}"),
            "width must be positive and finite",
        ));
    }
    let lo = center - 0.5 * width;
    let map = |v: f32| (((v as f64 - lo) / width * 255.0).round().clamp(0.0, 255.0)) as u8;
    let d = &volume.data;
    let (w, h, px): (usize, usize, Vec<u8>) = match plane {
        Plane::Axial => {
            (nx, ny, (0..ny).flat_map(|j| (0..nx).map(move |i| (j, i))).map(|(j, i)| map(d[[index, j, i]])).collect())
        }
        Plane::Coronal => (
            nx,
            nz,
            (0..nz).rev().flat_map(|k| (0..nx).map(move |i| (k, i))).map(|(k, i)| map(d[[k, index, i]])).collect(),
        ),
        Plane::Sagittal => (
            ny,
            nz,
            (0..nz).rev().flat_map(|k| (0..ny).map(move |j| (k, j))).map(|(k, j)| map(d[[k, j, index]])).collect(),
        ),
    };
    Ok((w, h, px))
}

/// Writes 8-bit grey pixels (`width × height`, row by row) as a PNG.
pub fn write_grey_png(path: &Path, width: usize, height: usize, pixels: &[u8]) -> Result<()> {
    if pixels.len() != width * height {
        return Err(IoError::format(path, "pixels", pixels.len(), format!("must be {width} × {height}")));
    }
    write_png(path, width, height, png::ColorType::Grayscale, pixels)
}

/// Writes 8-bit RGB pixels (`width × height`, row by row, R G B each) as a PNG.
pub fn write_rgb_png(path: &Path, width: usize, height: usize, rgb: &[u8]) -> Result<()> {
    if rgb.len() != width * height * 3 {
        return Err(IoError::format(path, "RGB samples", rgb.len(), format!("must be {width} × {height} × 3")));
    }
    write_png(path, width, height, png::ColorType::Rgb, rgb)
}

fn write_png(path: &Path, width: usize, height: usize, colour: png::ColorType, data: &[u8]) -> Result<()> {
    write_atomically(path, |tmp| {
        let f = File::create(tmp).map_err(|e| IoError::io(tmp, e))?;
        let mut enc = png::Encoder::new(std::io::BufWriter::new(f), width as u32, height as u32);
        enc.set_color(colour);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header().map_err(|e| IoError::format(tmp, "png", e, "could not write"))?;
        w.write_image_data(data).map_err(|e| IoError::format(tmp, "png", e, "could not write"))?;
        w.finish().map_err(|e| IoError::format(tmp, "png", e, "could not write"))
    })
}

/// Writes one windowed slice as a PNG.
pub fn write_slice_png(
    path: &Path,
    volume: &Volume,
    plane: Plane,
    index: usize,
    center: f64,
    width: f64,
) -> Result<()> {
    let (w, h, px) = window_slice(volume, plane, index, center, width).map_err(|e| match e {
        IoError::Format { field, value, reason, .. } => IoError::Format { path: path.to_owned(), field, value, reason },
        other => other,
    })?;
    write_grey_png(path, w, h, &px)
}
