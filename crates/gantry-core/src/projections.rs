//! Projection data: f32 values stored `[view][row][col]` with the geometry that produced them.

use crate::error::{CoreError, Result};
use crate::geometry::ScanGeometry;
use ndarray::Array3;

/// A stack of projections (line integrals, or counts before preprocessing), `[view][row][col]`,
/// with its scan geometry. Construction checks that the sizes agree.
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectionStack {
    pub geometry: ScanGeometry,
    pub data: Array3<f32>,
}

impl ProjectionStack {
    /// Wraps `data` after checking its shape against `geometry`.
    pub fn new(geometry: ScanGeometry, data: Array3<f32>) -> Result<Self> {
        geometry.validate()?;
        let want = geometry.projection_shape();
        if data.shape() != want {
            return Err(CoreError::size_mismatch(
                "projection data [view][row][col]",
                format!("{want:?}"),
                format!("{:?}", data.shape()),
            ));
        }
        Ok(ProjectionStack { geometry, data })
    }

    /// All-zero projections for `geometry`.
    pub fn zeros(geometry: ScanGeometry) -> Self {
        let data = Array3::zeros(geometry.projection_shape());
        ProjectionStack { geometry, data }
    }
}
