//! PNG slices of a volume with a display window (centre/width, e.g. brain 40/80 HU).

use crate::atomic::write_atomically;
use crate::error::{IoError, Result};
use gantry_core::Volume;
use std::fs::File;
use std::path::Path;

/// Which plane a slice is cut in. Slices are drawn in radiological convention whatever the
/// storage order: axial with the patient's right on the image's left and anterior at the top,
/// coronal with the right on the left and superior at the top, sagittal with anterior on the
/// left and superior at the top. The slice index counts along the stored axis nearest the
/// plane's normal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plane {
    /// Constant patient z (superior–inferior).
    Axial,
    /// Constant patient y (anterior–posterior).
    Coronal,
    /// Constant patient x (right–left).
    Sagittal,
}

/// For each patient axis (LPS x, y, z) the stored voxel axis (0 = i, 1 = j, 2 = k) nearest to
/// it and whether that voxel axis points the same way.
fn patient_axes(g: &gantry_core::VolumeGeometry) -> [(usize, bool); 3] {
    let d = g.direction;
    let mut out = [(0, true); 3];
    let mut used = [false; 3];
    // The patient axes in order of how clearly one voxel axis follows them.
    let mut order = [0usize, 1, 2];
    let clarity = |c: usize| (0..3).map(|a| d[c][a].abs()).fold(0.0, f64::max);
    order.sort_by(|&a, &b| clarity(b).total_cmp(&clarity(a)));
    for c in order {
        let a = (0..3)
            .filter(|&a| !used[a])
            .max_by(|&a, &b| d[c][a].abs().total_cmp(&d[c][b].abs()))
            .expect("an axis left");
        used[a] = true;
        out[c] = (a, d[c][a] >= 0.0);
    }
    out
}

/// How many slices of `plane` the volume holds (the length of the stored axis nearest its normal).
pub fn slices_in(volume: &Volume, plane: Plane) -> usize {
    let (nz, ny, nx) = volume.data.dim();
    let normal = match plane {
        Plane::Axial => 2,
        Plane::Coronal => 1,
        Plane::Sagittal => 0,
    };
    [nx, ny, nz][patient_axes(&volume.geometry)[normal].0]
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
    let dims = [nx, ny, nz];
    let axes = patient_axes(&volume.geometry);
    // (normal, column, row) as patient axes, the row running down: +1 along the axis, −1 against.
    let (normal, (col, col_dir), (row, row_dir)) = match plane {
        Plane::Axial => (2, (0, 1), (1, 1)),
        Plane::Coronal => (1, (0, 1), (2, -1)),
        Plane::Sagittal => (0, (1, 1), (2, -1)),
    };
    let n = dims[axes[normal].0];
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
    let (ca, ra) = (axes[col], axes[row]);
    let (w, h) = (dims[ca.0], dims[ra.0]);
    // The stored position along a voxel axis of display position t, for a patient direction.
    let along = |t: usize, (axis, forward): (usize, bool), dir: i32| {
        if forward == (dir > 0) {
            t
        } else {
            dims[axis] - 1 - t
        }
    };
    let mut px = Vec::with_capacity(w * h);
    for y in 0..h {
        for x in 0..w {
            let mut ijk = [0usize; 3];
            ijk[axes[normal].0] = index;
            ijk[ca.0] = along(x, ca, col_dir);
            ijk[ra.0] = along(y, ra, row_dir);
            px.push(map(d[[ijk[2], ijk[1], ijk[0]]]));
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use gantry_core::{Quantity, VolumeGeometry};

    /// A bright voxel at the patient's left, anterior, superior corner region is drawn on the
    /// image's right (axial, coronal) and top (coronal, sagittal; anterior top in axial, left in
    /// sagittal) for LPS, RAS and feet-first-like flipped storage.
    #[test]
    fn slices_are_drawn_in_radiological_convention_for_every_storage_order() {
        let dirs: [[[f64; 3]; 3]; 3] = [
            [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
            [[-1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, 1.0]],
            [[-1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, -1.0]],
        ];
        for d in dirs {
            let g = VolumeGeometry::new([20, 16, 12], [1.0, 1.0, 1.0], [0.0; 3], d).unwrap();
            // The voxel nearest the patient point left (+x), anterior (−y), superior (+z).
            let centre = g.position_mm(9.5, 7.5, 5.5);
            let target = [centre[0] + 7.0, centre[1] - 5.0, centre[2] + 4.0];
            let ijk = g.index_of(target);
            let (i, j, k) = (ijk[0].round() as usize, ijk[1].round() as usize, ijk[2].round() as usize);
            let mut data = ndarray::Array3::<f32>::zeros((12, 16, 20));
            data[[k, j, i]] = 1000.0;
            let v = Volume::of(Quantity::Hounsfield, g.clone(), data).unwrap();
            let bright = |plane: Plane, index: usize| {
                let (w, h, px) = window_slice(&v, plane, index, 500.0, 100.0).unwrap();
                let at = px.iter().position(|&p| p == 255).expect("the bright voxel is drawn");
                (at % w, at / w, w, h)
            };
            let (x, y, w, h) = bright(Plane::Axial, k);
            assert!(x > w / 2 && y < h / 2, "{d:?} axial: ({x}, {y}) of {w}×{h}");
            let (x, y, w, h) = bright(Plane::Coronal, j);
            assert!(x > w / 2 && y < h / 2, "{d:?} coronal: ({x}, {y}) of {w}×{h}");
            let (x, y, w, h) = bright(Plane::Sagittal, i);
            assert!(x < w / 2 && y < h / 2, "{d:?} sagittal: ({x}, {y}) of {w}×{h}");
        }
    }
}
