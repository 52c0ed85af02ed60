//! A dynamic series: the same volume grid sampled at several times (CT perfusion, gated
//! acquisitions). Data is `[t][z][y][x]`; times are seconds from the first frame.

use crate::error::{CoreError, Result};
use crate::quantity::Quantity;
use crate::volume::{Volume, VolumeGeometry};
use ndarray::{Array4, Axis};

#[derive(Debug, Clone, PartialEq)]
pub struct VolumeSeries {
    pub geometry: VolumeGeometry,
    /// Acquisition time of each frame (s), strictly increasing.
    pub times_s: Vec<f64>,
    pub data: Array4<f32>,
    /// What every frame holds (HU for a CT perfusion series).
    pub quantity: Quantity,
}

impl VolumeSeries {
    /// Checks the grid, the data shape against it and the times (finite, strictly increasing,
    /// one per frame).
    pub fn new(geometry: VolumeGeometry, times_s: Vec<f64>, data: Array4<f32>) -> Result<Self> {
        geometry.validate()?;
        let [z, y, x] = geometry.shape_zyx();
        let want = [times_s.len(), z, y, x];
        if data.shape() != want {
            return Err(CoreError::size_mismatch(
                "volume series data [t][z][y][x]",
                format!("{want:?}"),
                format!("{:?}", data.shape()),
            ));
        }
        if times_s.is_empty() {
            return Err(CoreError::invalid("volume series times_s", "[]", "needs at least one frame"));
        }
        for (i, w) in times_s.windows(2).enumerate() {
            if !(w[0].is_finite() && w[1].is_finite() && w[1] > w[0]) {
                return Err(CoreError::invalid(
                    format!("volume series times_s[{}]", i + 1),
                    w[1],
                    format!("must be finite and after times_s[{i}] = {}", w[0]),
                ));
            }
        }
        Ok(VolumeSeries { geometry, times_s, data, quantity: Quantity::Unspecified })
    }

    /// Builds a series from volumes on one grid.
    pub fn from_frames(frames: &[Volume], times_s: Vec<f64>) -> Result<Self> {
        let first =
            frames.first().ok_or_else(|| CoreError::invalid("volume series frames", 0, "needs at least one"))?;
        if let Some((i, f)) = frames.iter().enumerate().find(|(_, f)| f.geometry != first.geometry) {
            return Err(CoreError::invalid(
                format!("volume series frame {i} geometry"),
                format!("{:?}", f.geometry),
                format!("differs from frame 0: {:?}", first.geometry),
            ));
        }
        if let Some((i, f)) = frames.iter().enumerate().find(|(_, f)| f.quantity != first.quantity) {
            return Err(CoreError::invalid(
                format!("volume series frame {i} quantity"),
                f.quantity,
                format!("differs from frame 0: {}", first.quantity),
            ));
        }
        let views: Vec<_> = frames.iter().map(|f| f.data.view()).collect();
        let data = ndarray::stack(Axis(0), &views)
            .map_err(|e| CoreError::invalid("volume series frames", frames.len(), e.to_string()))?;
        Ok(VolumeSeries::new(first.geometry.clone(), times_s, data)?.with_quantity(first.quantity))
    }

    /// The same series, stating what its frames hold.
    pub fn with_quantity(self, quantity: Quantity) -> Self {
        VolumeSeries { quantity, ..self }
    }

    pub fn n_frames(&self) -> usize {
        self.times_s.len()
    }

    /// Frame `t` as a volume.
    pub fn frame(&self, t: usize) -> Volume {
        Volume {
            geometry: self.geometry.clone(),
            data: self.data.index_axis(Axis(0), t).to_owned(),
            quantity: self.quantity,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_and_times_are_checked() {
        let g = VolumeGeometry::centered([3, 2, 2], [1.0; 3], [0.0; 3]).unwrap();
        let a = Volume::zeros(g.clone());
        let b = a.map(|_| 5.0);
        let s = VolumeSeries::from_frames(&[a.clone(), b.clone()], vec![0.0, 1.5]).unwrap();
        assert_eq!(s.n_frames(), 2);
        assert_eq!(s.frame(1), b);
        let e = VolumeSeries::from_frames(&[a.clone(), b.clone()], vec![0.0, 0.0]).unwrap_err();
        assert!(e.to_string().contains("times_s[1]"), "{e}");
        let e = VolumeSeries::from_frames(std::slice::from_ref(&a), vec![0.0, 1.0]).unwrap_err();
        assert!(e.to_string().contains("[2, 2, 2, 3]"), "{e}");
        let other = Volume::zeros(VolumeGeometry::centered([3, 2, 2], [2.0; 3], [0.0; 3]).unwrap());
        let e = VolumeSeries::from_frames(&[a, other], vec![0.0, 1.0]).unwrap_err();
        assert!(e.to_string().contains("frame 1 geometry"), "{e}");
    }
}
