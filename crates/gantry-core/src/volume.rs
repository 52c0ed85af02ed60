//! A 3D image: f32 voxels stored `[z][y][x]`, the position of every voxel in its frame, and the
//! quantity the values are.

use crate::error::{CoreError, Result};
use crate::frame::Frame;
use crate::quantity::Quantity;
use ndarray::Array3;
use serde::{Deserialize, Serialize};

/// Where the voxels of a volume are: sizes, spacing, the centre of the first voxel, the
/// directions of the x, y and z index axes (columns of `direction`, unit vectors) and the frame
/// these positions are stated in (DICOM LPS unless the data came from RTK).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VolumeGeometry {
    /// Number of voxels along x, y, z (index axes).
    pub dims: [usize; 3],
    /// Voxel size along x, y, z in mm.
    pub spacing_mm: [f64; 3],
    /// Position in mm of the centre of voxel (0, 0, 0).
    pub origin_mm: [f64; 3],
    /// `direction[r][c]`: component r of the unit vector of index axis c.
    pub direction: [[f64; 3]; 3],
    /// The frame of `origin_mm` and `direction`.
    #[serde(default)]
    pub frame: Frame,
}

pub const IDENTITY: [[f64; 3]; 3] = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];

impl VolumeGeometry {
    /// A validated geometry with the given origin and direction, in LPS.
    pub fn new(dims: [usize; 3], spacing_mm: [f64; 3], origin_mm: [f64; 3], direction: [[f64; 3]; 3]) -> Result<Self> {
        let g = VolumeGeometry { dims, spacing_mm, origin_mm, direction, frame: Frame::Lps };
        g.validate()?;
        Ok(g)
    }

    /// The same grid stated in another frame.
    pub fn in_frame(self, frame: Frame) -> Self {
        VolumeGeometry { frame, ..self }
    }

    /// A grid of `dims` voxels of `spacing_mm`, axis-aligned, centred on `center_mm` (LPS).
    pub fn centered(dims: [usize; 3], spacing_mm: [f64; 3], center_mm: [f64; 3]) -> Result<Self> {
        let origin = std::array::from_fn(|a| center_mm[a] - 0.5 * (dims[a] as f64 - 1.0) * spacing_mm[a]);
        Self::new(dims, spacing_mm, origin, IDENTITY)
    }

    /// Checks sizes, spacing and direction once; the kernels then trust the geometry.
    pub fn validate(&self) -> Result<()> {
        for (a, axis) in ["x", "y", "z"].into_iter().enumerate() {
            if self.dims[a] == 0 {
                return Err(CoreError::invalid(format!("volume dims.{axis}"), self.dims[a], "must be at least 1"));
            }
            let s = self.spacing_mm[a];
            if !(s.is_finite() && s > 0.0) {
                return Err(CoreError::invalid(format!("volume spacing_mm.{axis}"), s, "must be finite and positive"));
            }
            if !self.origin_mm[a].is_finite() {
                return Err(CoreError::invalid(
                    format!("volume origin_mm.{axis}"),
                    self.origin_mm[a],
                    "must be finite",
                ));
            }
        }
        // Direction columns must be orthonormal.
        for c in 0..3 {
            for d in c..3 {
                let dot: f64 = (0..3).map(|r| self.direction[r][c] * self.direction[r][d]).sum();
                let want = if c == d { 1.0 } else { 0.0 };
                if !dot.is_finite() || (dot - want).abs() > 1e-6 {
                    return Err(CoreError::invalid(
                        "volume direction",
                        format!("{:?}", self.direction),
                        "columns must be orthonormal unit vectors",
                    ));
                }
            }
        }
        Ok(())
    }

    /// Number of voxels.
    pub fn len(&self) -> usize {
        self.dims.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The shape of the data array, `[z][y][x]`.
    pub fn shape_zyx(&self) -> [usize; 3] {
        [self.dims[2], self.dims[1], self.dims[0]]
    }

    /// Whether the index axes are the x, y, z axes of the frame.
    pub fn is_axis_aligned(&self) -> bool {
        self.direction == IDENTITY
    }

    /// Position in mm (in `frame`) of the centre of voxel (i, j, k) = (x, y, z) index.
    pub fn position_mm(&self, i: f64, j: f64, k: f64) -> [f64; 3] {
        let idx = [i, j, k];
        std::array::from_fn(|r| {
            self.origin_mm[r] + (0..3).map(|c| self.direction[r][c] * idx[c] * self.spacing_mm[c]).sum::<f64>()
        })
    }

    /// Fractional (x, y, z) index of position `p` (mm, in `frame`): the inverse of
    /// [`VolumeGeometry::position_mm`].
    pub fn index_of(&self, p: [f64; 3]) -> [f64; 3] {
        let rel: [f64; 3] = std::array::from_fn(|r| p[r] - self.origin_mm[r]);
        std::array::from_fn(|c| (0..3).map(|r| self.direction[r][c] * rel[r]).sum::<f64>() / self.spacing_mm[c])
    }
}

/// A volume of f32 voxels, stored C-order `[z][y][x]`, with its geometry and the quantity its
/// values are.
#[derive(Debug, Clone, PartialEq)]
pub struct Volume {
    pub geometry: VolumeGeometry,
    pub data: Array3<f32>,
    pub quantity: Quantity,
}

impl Volume {
    /// A volume of zeros, of unspecified quantity.
    pub fn zeros(geometry: VolumeGeometry) -> Self {
        let data = Array3::zeros(geometry.shape_zyx());
        Volume { geometry, data, quantity: Quantity::Unspecified }
    }

    /// The same voxels, stating what they are.
    pub fn with_quantity(self, quantity: Quantity) -> Self {
        Volume { quantity, ..self }
    }

    /// Wraps `data` (`[z][y][x]`) of `quantity` after checking it against the geometry.
    pub fn of(quantity: Quantity, geometry: VolumeGeometry, data: Array3<f32>) -> Result<Self> {
        Ok(Volume::new(geometry, data)?.with_quantity(quantity))
    }

    /// Wraps `data` (`[z][y][x]`) after checking it against the geometry; the quantity is
    /// unspecified until [`Volume::with_quantity`] states it.
    pub fn new(geometry: VolumeGeometry, data: Array3<f32>) -> Result<Self> {
        geometry.validate()?;
        let want = geometry.shape_zyx();
        if data.shape() != want {
            return Err(CoreError::size_mismatch(
                "volume data [z][y][x]",
                format!("{want:?}"),
                format!("{:?}", data.shape()),
            ));
        }
        Ok(Volume { geometry, data, quantity: Quantity::Unspecified })
    }

    /// Maps every voxel through `f`; the result keeps the quantity (state another with
    /// [`Volume::with_quantity`] when `f` changes it).
    pub fn map(&self, f: impl Fn(f32) -> f32) -> Volume {
        Volume { geometry: self.geometry.clone(), data: self.data.mapv(f), quantity: self.quantity }
    }

    /// The same voxels indexed as `target` indexes them: `target` must hold exactly this
    /// volume's voxel centres (same frame; index axes permuted or reversed), or this is an error.
    pub fn reindexed(&self, target: &VolumeGeometry) -> Result<Volume> {
        let g = &self.geometry;
        let mismatch = || {
            CoreError::invalid(
                "target grid",
                format!("{target:?}"),
                format!("does not hold the same voxel centres as {g:?}"),
            )
        };
        if target.frame != g.frame || target.len() != g.len() {
            return Err(mismatch());
        }
        let o = g.index_of(target.position_mm(0.0, 0.0, 0.0));
        let mut base = [0isize; 3];
        for a in 0..3 {
            if (o[a] - o[a].round()).abs() > 1e-4 {
                return Err(mismatch());
            }
            base[a] = o[a].round() as isize;
        }
        // Source index step for one step along each target axis.
        let mut step = [[0isize; 3]; 3];
        for (c, st) in step.iter_mut().enumerate() {
            let mut e = [0.0; 3];
            e[c] = 1.0;
            let p = g.index_of(target.position_mm(e[0], e[1], e[2]));
            for a in 0..3 {
                let d = p[a] - o[a];
                if (d - d.round()).abs() > 1e-4 {
                    return Err(mismatch());
                }
                st[a] = d.round() as isize;
            }
            if st.iter().map(|v| v.abs()).sum::<isize>() != 1 {
                return Err(mismatch());
            }
        }
        let [nx, ny, nz] = target.dims;
        let corner = |i: usize, j: usize, k: usize| -> [isize; 3] {
            std::array::from_fn(|a| {
                base[a] + step[0][a] * i as isize + step[1][a] * j as isize + step[2][a] * k as isize
            })
        };
        let far = corner(nx - 1, ny - 1, nz - 1);
        for a in 0..3 {
            let n = g.dims[a] as isize;
            if !(0..n).contains(&base[a]) || !(0..n).contains(&far[a]) {
                return Err(mismatch());
            }
        }
        let data = Array3::from_shape_fn((nz, ny, nx), |(k, j, i)| {
            let s = corner(i, j, k);
            self.data[[s[2] as usize, s[1] as usize, s[0] as usize]]
        });
        Ok(Volume { geometry: target.clone(), data, quantity: self.quantity })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn centered_geometry_is_symmetric() {
        let g = VolumeGeometry::centered([4, 5, 3], [1.0, 0.5, 2.0], [0.0, 0.0, 10.0]).unwrap();
        let a = g.position_mm(0.0, 0.0, 0.0);
        let b = g.position_mm(3.0, 4.0, 2.0);
        assert_eq!(a, [-1.5, -1.0, 8.0]);
        assert_eq!(b, [1.5, 1.0, 12.0]);
    }

    #[test]
    fn bad_geometry_names_the_field() {
        let e = VolumeGeometry::centered([4, 0, 3], [1.0; 3], [0.0; 3]).unwrap_err();
        assert!(e.to_string().contains("dims.y"), "{e}");
        let e = VolumeGeometry::centered([4, 4, 3], [1.0, f64::NAN, 1.0], [0.0; 3]).unwrap_err();
        assert!(e.to_string().contains("spacing_mm.y"), "{e}");
        let g = VolumeGeometry::centered([2, 2, 2], [1.0; 3], [0.0; 3]).unwrap();
        let e = Volume::new(g, Array3::zeros((2, 2, 3))).unwrap_err();
        assert!(e.to_string().contains("[2, 2, 3]"), "{e}");
    }
}
