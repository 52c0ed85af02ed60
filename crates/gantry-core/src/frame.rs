//! Frames of reference, and the one place where coordinates move between them.
//!
//! - The **scanner frame** is where scan geometries live and kernels work: z along the rotation
//!   axis (the table), pointing into the gantry; x horizontal; y vertical, towards the floor.
//! - A volume is in a **world frame** ([`Frame`]): DICOM patient coordinates (LPS: +x to the
//!   patient's left, +y posterior, +z superior), or RTK's fixed frame (rotation axis y, source at
//!   +z at gantry angle 0) for data that came from RTK and goes back to it.
//! - A scan states how its scanner frame sits in its world frame ([`ScanFrame`]): the patient
//!   position (head first supine unless the protocol says otherwise), or RTK's frame.
//!
//! [`FrameMap`] turns a grid a user asked for in the world frame into the axis-aligned scanner
//! grid the kernels want, and the scanner result back into the world grid, voxel for voxel.

use crate::error::{CoreError, Result};
use crate::volume::{Volume, VolumeGeometry, IDENTITY};
use serde::{Deserialize, Serialize};

/// A 3 × 3 matrix, `m[row][col]`.
pub type Mat3 = [[f64; 3]; 3];

/// The frame a volume's positions are stated in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Frame {
    /// DICOM patient coordinates: x to the patient's left, y posterior, z superior (mm).
    #[default]
    Lps,
    /// RTK's fixed frame (`ThreeDCircularProjectionGeometry`): rotation axis y (mm). It has no
    /// patient orientation; such volumes go back to RTK/ITK, not to DICOM.
    Rtk,
}

impl Frame {
    pub fn code(self) -> &'static str {
        match self {
            Frame::Lps => "LPS",
            Frame::Rtk => "RTK",
        }
    }

    pub fn parse(s: &str) -> Result<Frame> {
        match s.trim().to_ascii_uppercase().as_str() {
            "LPS" => Ok(Frame::Lps),
            "RTK" => Ok(Frame::Rtk),
            other => Err(CoreError::invalid("frame", format!("{other:?}"), "expected LPS or RTK")),
        }
    }
}

impl std::fmt::Display for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// How the patient lies in the scanner (DICOM Patient Position, PS3.3 C.7.3.1.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum PatientPosition {
    /// Head first, supine.
    #[default]
    #[serde(rename = "HFS")]
    Hfs,
    /// Feet first, supine.
    #[serde(rename = "FFS")]
    Ffs,
    /// Head first, prone.
    #[serde(rename = "HFP")]
    Hfp,
    /// Feet first, prone.
    #[serde(rename = "FFP")]
    Ffp,
    /// Head first, decubitus left (lying on the left side).
    #[serde(rename = "HFDL")]
    Hfdl,
    /// Head first, decubitus right.
    #[serde(rename = "HFDR")]
    Hfdr,
    /// Feet first, decubitus left.
    #[serde(rename = "FFDL")]
    Ffdl,
    /// Feet first, decubitus right.
    #[serde(rename = "FFDR")]
    Ffdr,
}

impl PatientPosition {
    pub const ALL: [PatientPosition; 8] = [
        PatientPosition::Hfs,
        PatientPosition::Ffs,
        PatientPosition::Hfp,
        PatientPosition::Ffp,
        PatientPosition::Hfdl,
        PatientPosition::Hfdr,
        PatientPosition::Ffdl,
        PatientPosition::Ffdr,
    ];

    /// The DICOM code: "HFS", "FFS", …
    pub fn code(self) -> &'static str {
        match self {
            PatientPosition::Hfs => "HFS",
            PatientPosition::Ffs => "FFS",
            PatientPosition::Hfp => "HFP",
            PatientPosition::Ffp => "FFP",
            PatientPosition::Hfdl => "HFDL",
            PatientPosition::Hfdr => "HFDR",
            PatientPosition::Ffdl => "FFDL",
            PatientPosition::Ffdr => "FFDR",
        }
    }

    pub fn parse(s: &str) -> Result<PatientPosition> {
        let u = s.trim().to_ascii_uppercase();
        PatientPosition::ALL.into_iter().find(|p| p.code() == u).ok_or_else(|| {
            CoreError::invalid(
                "patient_position",
                format!("{s:?}"),
                "expected HFS, FFS, HFP, FFP, HFDL, HFDR, FFDL or FFDR",
            )
        })
    }

    /// Scanner → patient (LPS) coordinates: `p_lps = M · p_scanner`. Seen from the foot of the
    /// table looking into the gantry, scanner +x is to the right, +y down, +z into the gantry;
    /// a supine patient head first has the left side at +x, the back down and the head in.
    pub fn scanner_to_lps(self) -> Mat3 {
        match self {
            PatientPosition::Hfs => IDENTITY,
            PatientPosition::Ffs => [[-1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, -1.0]],
            PatientPosition::Hfp => [[-1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, 1.0]],
            PatientPosition::Ffp => [[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]],
            // Rolled onto the left side: the patient's left points down (+y), posterior to −x.
            PatientPosition::Hfdl => [[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]],
            PatientPosition::Hfdr => [[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]],
            PatientPosition::Ffdl => [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]],
            PatientPosition::Ffdr => [[0.0, -1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, -1.0]],
        }
    }
}

impl std::fmt::Display for PatientPosition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// Where a scan's scanner frame sits in the world its volumes are stated in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum ScanFrame {
    /// A patient in DICOM LPS, lying as stated.
    Patient(PatientPosition),
    /// RTK's fixed frame: (x, y, z)_RTK = (x, z, −y)_scanner.
    Rtk,
}

impl Default for ScanFrame {
    fn default() -> Self {
        ScanFrame::Patient(PatientPosition::Hfs)
    }
}

impl TryFrom<String> for ScanFrame {
    type Error = CoreError;
    fn try_from(s: String) -> Result<ScanFrame> {
        if s.trim().eq_ignore_ascii_case("RTK") {
            return Ok(ScanFrame::Rtk);
        }
        PatientPosition::parse(&s).map(ScanFrame::Patient).map_err(|_| {
            CoreError::invalid(
                "frame",
                format!("{s:?}"),
                "expected a patient position (HFS, FFS, HFP, FFP, HFDL, HFDR, FFDL, FFDR) or RTK",
            )
        })
    }
}

impl From<ScanFrame> for String {
    fn from(f: ScanFrame) -> String {
        match f {
            ScanFrame::Patient(p) => p.code().to_string(),
            ScanFrame::Rtk => "RTK".to_string(),
        }
    }
}

impl std::fmt::Display for ScanFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&String::from(*self))
    }
}

impl ScanFrame {
    /// The frame the scan's volumes are stated in.
    pub fn world(self) -> Frame {
        match self {
            ScanFrame::Patient(_) => Frame::Lps,
            ScanFrame::Rtk => Frame::Rtk,
        }
    }

    /// Scanner → world coordinates: `p_world = M · p_scanner` (a rotation).
    pub fn scanner_to_world(self) -> Mat3 {
        match self {
            ScanFrame::Patient(p) => p.scanner_to_lps(),
            ScanFrame::Rtk => [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]],
        }
    }

    /// A point given in the world frame, in scanner coordinates.
    pub fn world_to_scanner_point(self, p: [f64; 3]) -> [f64; 3] {
        mat_vec(&transpose(&self.scanner_to_world()), p)
    }
}

pub fn mat_vec(m: &Mat3, v: [f64; 3]) -> [f64; 3] {
    std::array::from_fn(|r| (0..3).map(|c| m[r][c] * v[c]).sum())
}

pub fn mat_mul(a: &Mat3, b: &Mat3) -> Mat3 {
    std::array::from_fn(|r| std::array::from_fn(|c| (0..3).map(|k| a[r][k] * b[k][c]).sum()))
}

pub fn transpose(m: &Mat3) -> Mat3 {
    std::array::from_fn(|r| std::array::from_fn(|c| m[c][r]))
}

/// The same voxels with positions mapped by the rotation `m` (`p' = m · p`) and stated in
/// `frame`: a relabelling, no data moves.
pub fn transform_geometry(g: &VolumeGeometry, m: &Mat3, frame: Frame) -> VolumeGeometry {
    VolumeGeometry {
        dims: g.dims,
        spacing_mm: g.spacing_mm,
        origin_mm: mat_vec(m, g.origin_mm),
        direction: mat_mul(m, &g.direction),
        frame,
    }
}

/// When every index axis of `g` runs along a frame axis (a signed permutation), the grid with
/// identity direction that holds exactly the same voxel centres; otherwise None.
pub fn axis_aligned_twin(g: &VolumeGeometry) -> Option<VolumeGeometry> {
    let mut dims = [0usize; 3];
    let mut spacing = [0.0f64; 3];
    let mut used = [false; 3];
    let mut low_corner = [0.0f64; 3];
    for c in 0..3 {
        let r = (0..3).find(|&r| (g.direction[r][c].abs() - 1.0).abs() < 1e-9)?;
        if used[r] || (0..3).any(|q| q != r && g.direction[q][c].abs() > 1e-9) {
            return None;
        }
        used[r] = true;
        dims[r] = g.dims[c];
        spacing[r] = g.spacing_mm[c];
        let last = g.direction[r][c] * (g.dims[c] as f64 - 1.0) * g.spacing_mm[c];
        low_corner[r] = last.min(0.0);
    }
    let origin = std::array::from_fn(|r| g.origin_mm[r] + low_corner[r]);
    Some(VolumeGeometry { dims, spacing_mm: spacing, origin_mm: origin, direction: IDENTITY, frame: g.frame })
}

/// How a grid in a scan's world frame maps onto the scanner-frame grid the kernels work on.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameMap {
    world: VolumeGeometry,
    /// The world grid in scanner coordinates, made axis-aligned when it can be.
    scanner: VolumeGeometry,
    /// The scanner grid relabelled into the world frame (same voxels as `world`, perhaps
    /// indexed in another order).
    scanner_in_world: VolumeGeometry,
}

impl FrameMap {
    /// Checks that `world` is stated in the scan's world frame and builds the map.
    pub fn new(world: &VolumeGeometry, frame: ScanFrame) -> Result<FrameMap> {
        world.validate()?;
        if world.frame != frame.world() {
            return Err(CoreError::invalid(
                "volume frame",
                world.frame,
                format!("the scan's volumes are in the {} frame ({frame}); give the grid in that frame", frame.world()),
            ));
        }
        let m = frame.scanner_to_world();
        let in_scanner = transform_geometry(world, &transpose(&m), Frame::Lps);
        let scanner = axis_aligned_twin(&in_scanner).unwrap_or(in_scanner);
        let scanner_in_world = transform_geometry(&scanner, &m, world.frame);
        Ok(FrameMap { world: world.clone(), scanner, scanner_in_world })
    }

    /// The grid the kernels reconstruct or project on (scanner coordinates; the frame field is
    /// unused there).
    pub fn scanner_grid(&self) -> &VolumeGeometry {
        &self.scanner
    }

    pub fn world_grid(&self) -> &VolumeGeometry {
        &self.world
    }

    /// Whether the two grids index the voxels in the same order (no data needs to move).
    pub fn is_trivial(&self) -> bool {
        self.scanner_in_world == self.world
    }

    /// A scanner-grid volume as the world grid asked for.
    pub fn to_world(&self, scanner: Volume) -> Result<Volume> {
        let relabelled = Volume { geometry: self.scanner_in_world.clone(), ..scanner };
        if self.is_trivial() {
            return Ok(relabelled);
        }
        relabelled.reindexed(&self.world)
    }

    /// A world-grid volume on the scanner grid.
    pub fn to_scanner(&self, world: &Volume) -> Result<Volume> {
        if world.geometry != self.world {
            return Err(CoreError::size_mismatch(
                "volume geometry",
                format!("{:?}", self.world),
                format!("{:?}", world.geometry),
            ));
        }
        let v = if self.is_trivial() {
            Volume { geometry: self.scanner_in_world.clone(), ..world.clone() }
        } else {
            world.reindexed(&self.scanner_in_world)?
        };
        Ok(Volume { geometry: self.scanner.clone(), ..v })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(m: &Mat3) -> f64 {
        m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
    }

    #[test]
    fn positions_are_rotations_with_the_stated_anatomy() {
        for p in PatientPosition::ALL {
            let m = p.scanner_to_lps();
            assert!((det(&m) - 1.0).abs() < 1e-12, "{p}");
            assert_eq!(mat_mul(&m, &transpose(&m)), IDENTITY, "{p}");
        }
        // Head first: superior is into the gantry; feet first: out of it.
        assert_eq!(mat_vec(&PatientPosition::Hfs.scanner_to_lps(), [0.0, 0.0, 1.0]), [0.0, 0.0, 1.0]);
        assert_eq!(mat_vec(&PatientPosition::Ffs.scanner_to_lps(), [0.0, 0.0, 1.0]), [0.0, 0.0, -1.0]);
        // Supine: the floor (+y) is posterior; prone: anterior.
        assert_eq!(mat_vec(&PatientPosition::Hfs.scanner_to_lps(), [0.0, 1.0, 0.0])[1], 1.0);
        assert_eq!(mat_vec(&PatientPosition::Hfp.scanner_to_lps(), [0.0, 1.0, 0.0])[1], -1.0);
        // Decubitus left: the floor is the patient's left.
        assert_eq!(mat_vec(&PatientPosition::Hfdl.scanner_to_lps(), [0.0, 1.0, 0.0]), [1.0, 0.0, 0.0]);
        // RTK: its y is the rotation axis.
        assert_eq!(mat_vec(&ScanFrame::Rtk.scanner_to_world(), [0.0, 0.0, 1.0]), [0.0, 1.0, 0.0]);
        assert_eq!(ScanFrame::try_from("ffs".to_string()).unwrap(), ScanFrame::Patient(PatientPosition::Ffs));
        assert!(ScanFrame::try_from("sideways".to_string()).unwrap_err().to_string().contains("sideways"));
    }

    #[test]
    fn frame_map_round_trips_every_voxel() {
        let world = VolumeGeometry::centered([5, 4, 3], [1.0, 2.0, 0.5], [3.0, -1.0, 7.0]).unwrap();
        let data = ndarray::Array3::from_shape_fn((3, 4, 5), |(k, j, i)| (100 * k + 10 * j + i) as f32);
        let vol = Volume::new(world.clone(), data).unwrap();
        for frame in [ScanFrame::Patient(PatientPosition::Ffs), ScanFrame::Patient(PatientPosition::Hfdr)] {
            let map = FrameMap::new(&world, frame).unwrap();
            let s = map.to_scanner(&vol).unwrap();
            assert!(s.geometry.is_axis_aligned());
            // Each scanner voxel holds the value of the world voxel at the same place.
            let m = frame.scanner_to_world();
            for ((k, j, i), &v) in s.data.indexed_iter() {
                let p = mat_vec(&m, s.geometry.position_mm(i as f64, j as f64, k as f64));
                let idx = world.index_of(p);
                let w = vol.data[[idx[2].round() as usize, idx[1].round() as usize, idx[0].round() as usize]];
                assert_eq!(v, w, "{frame} at {:?}", [i, j, k]);
            }
            assert_eq!(map.to_world(s).unwrap(), vol);
        }
        let rtk = VolumeGeometry { frame: Frame::Rtk, ..world.clone() };
        let map = FrameMap::new(&rtk, ScanFrame::Rtk).unwrap();
        // RTK's y (size 4) is the scanner's z.
        assert_eq!(map.scanner_grid().dims, [5, 3, 4]);
        let e = FrameMap::new(&world, ScanFrame::Rtk).unwrap_err().to_string();
        assert!(e.contains("RTK"), "{e}");
    }
}
