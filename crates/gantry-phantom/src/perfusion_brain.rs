//! A synthetic whole-brain CT perfusion study with exact ground truth.
//!
//! The head is built from analytic shapes in LPS millimetres (scalp, a 6 mm skull, a CSF rim,
//! a cortical grey-matter ribbon, white matter, deep grey nuclei, ventricles), with arteries
//! (anterior cerebral pair, both middle cerebral trunks) carrying the arterial curve and the
//! superior sagittal sinus carrying the venous one. An optional MCA-territory lesion on the
//! patient's left is a sector of tissue: its inner part is ischaemic core (flow ≪ normal, long
//! delay), the rest penumbra (reduced flow, delay > 6 s). Classes are sampled at five depths
//! across each 5 mm slice (the slice profile: a voxel is the mean of its depths), and the truth
//! volumes are exact counts of those samples.
//!
//! Each frame is the class's baseline HU plus its enhancement curve (the indicator-dilution
//! model of [`crate::perfusion`]), blurred in-plane by the scanner's Gaussian point spread (which
//! lowers the peak of thin arteries, as partial volume does), plus seeded Gaussian noise.
//! Optional rigid motion moves the whole head on a share of the frames.

use crate::perfusion::{arterial_curve, tissue_curve, GammaVariate, Recirculation, Residue, Tissue};
use gantry_core::{Quantity, VolumeGeometry, VolumeSeries};
use ndarray::{Array3, Array4, Axis};
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};
use rayon::prelude::*;

/// Voxel classes of the brain phantom.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum BrainClass {
    Air = 0,
    Scalp,
    Skull,
    Csf,
    GreyMatter,
    WhiteMatter,
    GreyPenumbra,
    WhitePenumbra,
    GreyCore,
    WhiteCore,
    Artery,
    Sinus,
    /// The penumbra's outer band: delayed less, nearer the 6 s threshold.
    GreyOuterPenumbra,
    WhiteOuterPenumbra,
    /// Benign oligaemia around the penumbra: delayed and slowed but under 6 s.
    GreyOligaemia,
    WhiteOligaemia,
}

/// Number of classes.
pub const N_CLASSES: usize = 16;

impl BrainClass {
    /// Every class, in the order of its number.
    pub const ALL: [BrainClass; N_CLASSES] = {
        use BrainClass::*;
        [
            Air,
            Scalp,
            Skull,
            Csf,
            GreyMatter,
            WhiteMatter,
            GreyPenumbra,
            WhitePenumbra,
            GreyCore,
            WhiteCore,
            Artery,
            Sinus,
            GreyOuterPenumbra,
            WhiteOuterPenumbra,
            GreyOligaemia,
            WhiteOligaemia,
        ]
    };
    /// The class of a label (labels beyond the last class wrap; the phantom writes none).
    pub fn from_u8(v: u8) -> BrainClass {
        BrainClass::ALL[v as usize % N_CLASSES]
    }
    /// Perfused parenchyma (what the maps and the volumes are about).
    pub fn is_tissue(self) -> bool {
        use BrainClass::*;
        matches!(
            self,
            GreyMatter
                | WhiteMatter
                | GreyPenumbra
                | WhitePenumbra
                | GreyCore
                | WhiteCore
                | GreyOuterPenumbra
                | WhiteOuterPenumbra
                | GreyOligaemia
                | WhiteOligaemia
        )
    }
    pub fn is_core(self) -> bool {
        matches!(self, BrainClass::GreyCore | BrainClass::WhiteCore)
    }
    /// Both bands of the penumbra (Tmax > 6 s outside the core).
    pub fn is_penumbra(self) -> bool {
        use BrainClass::*;
        matches!(self, GreyPenumbra | WhitePenumbra | GreyOuterPenumbra | WhiteOuterPenumbra)
    }
    pub fn is_oligaemic(self) -> bool {
        matches!(self, BrainClass::GreyOligaemia | BrainClass::WhiteOligaemia)
    }
    /// Grey-matter classes (normal, penumbra, core, oligaemia).
    pub fn is_grey(self) -> bool {
        use BrainClass::*;
        matches!(self, GreyMatter | GreyPenumbra | GreyCore | GreyOuterPenumbra | GreyOligaemia)
    }
    /// Unenhanced HU.
    pub fn baseline_hu(self) -> f64 {
        use BrainClass::*;
        match self {
            Air => -1000.0,
            Scalp => 40.0,
            Skull => 1200.0,
            Csf => 8.0,
            GreyMatter | GreyPenumbra | GreyCore | GreyOuterPenumbra | GreyOligaemia => 38.0,
            WhiteMatter | WhitePenumbra | WhiteCore | WhiteOuterPenumbra | WhiteOligaemia => 28.0,
            // Unenhanced blood.
            Artery | Sinus => 45.0,
        }
    }
}

/// Perfusion of a lesion compartment relative to normal tissue.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hypoperfusion {
    /// CBF as a share of the normal tissue's.
    pub cbf_factor: f64,
    /// s.
    pub mtt_s: f64,
    /// Delay of the tissue's arterial supply after the measured arterial input (s).
    pub delay_s: f64,
}

/// An MCA-territory lesion in the patient's left hemisphere (+x in LPS).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lesion {
    /// Penumbra sector: half-angle about the lateral direction seen from (0, −5) mm, and the
    /// z range (mm; the presets end on the 5 mm slice boundaries of the clinical grid).
    pub penumbra_half_angle_deg: f64,
    pub penumbra_z_mm: (f64, f64),
    /// Core: a narrower sector, its own z range and a minimum distance from (0, −5) mm.
    pub core_half_angle_deg: f64,
    pub core_z_mm: (f64, f64),
    pub core_min_radius_mm: f64,
    pub penumbra: Hypoperfusion,
    pub core: Hypoperfusion,
    /// An outer band of the penumbra, this many degrees beyond its half-angle, with its own
    /// perfusion (delay still above 6 s); None: one band.
    pub outer_penumbra: Option<(f64, Hypoperfusion)>,
    /// Benign oligaemia this many degrees beyond the penumbra (delay under 6 s); None: none.
    pub oligaemia: Option<(f64, Hypoperfusion)>,
    /// Irregular edges: every sector boundary (angle and the core's inner radius) wanders by up
    /// to this share of its value, smoothly along radius, depth and angle, from `shape_seed`;
    /// 0: straight edges.
    pub irregularity: f64,
    pub shape_seed: u64,
}

impl Lesion {
    /// A typical large-vessel occlusion with a salvageable penumbra: core ≈ 30 mL, Tmax > 6 s
    /// ≈ 130 mL (DEFUSE-3 and EXTEND met).
    pub fn typical() -> Lesion {
        Lesion {
            penumbra_half_angle_deg: 36.0,
            penumbra_z_mm: (-25.0, 30.0),
            core_half_angle_deg: 20.0,
            core_z_mm: (-10.0, 15.0),
            core_min_radius_mm: 26.0,
            penumbra: Hypoperfusion { cbf_factor: 0.6, mtt_s: 8.0, delay_s: 9.0 },
            core: Hypoperfusion { cbf_factor: 0.08, mtt_s: 10.0, delay_s: 12.0 },
            outer_penumbra: None,
            oligaemia: None,
            irregularity: 0.0,
            shape_seed: 0,
        }
    }

    /// A graded lesion as scanners see them: an irregular core (delay 11 s), a penumbra in two
    /// bands (delays 9 and 7 s, the outer one a second from the threshold) and an oligaemic rim
    /// (delay 4 s, MTT 6 s) that must not count; core ≈ 21 mL and Tmax > 6 s ≈ 85 mL on the
    /// 8-slice 40 mm slab of `BrainConfig::scanner_like`.
    pub fn graded(shape_seed: u64) -> Lesion {
        Lesion {
            penumbra_half_angle_deg: 26.0,
            penumbra_z_mm: (-25.0, 30.0),
            core_half_angle_deg: 17.0,
            core_z_mm: (-12.0, 14.0),
            core_min_radius_mm: 30.0,
            penumbra: Hypoperfusion { cbf_factor: 0.55, mtt_s: 8.0, delay_s: 9.0 },
            core: Hypoperfusion { cbf_factor: 0.15, mtt_s: 10.0, delay_s: 11.0 },
            outer_penumbra: Some((8.0, Hypoperfusion { cbf_factor: 0.75, mtt_s: 6.5, delay_s: 7.0 })),
            oligaemia: Some((8.0, Hypoperfusion { cbf_factor: 0.9, mtt_s: 6.0, delay_s: 4.0 })),
            irregularity: 0.25,
            shape_seed,
        }
    }

    /// A smooth seeded field in [−1, 1] of (radius mm, z mm, angle degrees): the sum of three
    /// waves of 12–40 mm (and 10–25°) periods with seeded phases.
    fn wander(&self, which: u64, r: f64, z: f64, a: f64) -> f64 {
        if self.irregularity == 0.0 {
            return 0.0;
        }
        let mut h = self.shape_seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ which.wrapping_mul(0xD1B5_4A32_D192_ED03);
        let mut next = || {
            h ^= h >> 33;
            h = h.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
            h ^= h >> 29;
            (h >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut v = 0.0;
        for _ in 0..3 {
            let (pr, pz, pa, ph) = (12.0 + 28.0 * next(), 12.0 + 28.0 * next(), 10.0 + 15.0 * next(), next());
            v += (std::f64::consts::TAU * (r / pr + z / pz + a / pa + ph)).sin();
        }
        v / 3.0
    }

    /// A completed infarct: core ≈ 100 mL, little mismatch (no trial criterion met).
    pub fn large_core() -> Lesion {
        Lesion {
            penumbra_half_angle_deg: 50.0,
            penumbra_z_mm: (-35.0, 45.0),
            core_half_angle_deg: 34.0,
            core_z_mm: (-20.0, 30.0),
            core_min_radius_mm: 18.0,
            ..Lesion::typical()
        }
    }
}

/// Rigid motion of the whole head on some frames.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Motion {
    /// Share of the frames that move (never the first).
    pub fraction: f64,
    /// Translation length (mm) and rotation angle (degrees) of each moved frame.
    pub translation_mm: f64,
    pub rotation_deg: f64,
}

/// What to simulate.
#[derive(Debug, Clone, PartialEq)]
pub struct BrainConfig {
    /// Voxels along x, y, z.
    pub dims: [usize; 3],
    /// In-plane pixel size and slice spacing (mm).
    pub pixel_mm: f64,
    pub slice_mm: f64,
    pub n_frames: usize,
    pub frame_interval_s: f64,
    /// Time of the first frame after injection (s); the bolus arrives at 8 s.
    pub first_frame_s: f64,
    /// Peak of the arterial curve in a large artery (ΔHU).
    pub aif_peak_hu: f64,
    /// Gaussian noise per voxel and frame (HU).
    pub noise_hu: f64,
    /// Spatial correlation of the noise: white noise smoothed in-plane by a Gaussian of this σ
    /// (pixels), then rescaled so every voxel still has σ = `noise_hu`; 0: white. Real CT
    /// noise is correlated (filtered backprojection shapes its spectrum), and correlated noise
    /// survives spatial averaging that white noise does not.
    pub noise_correlation_px: f64,
    /// Recirculation of the bolus (in the arterial input, so in every tissue too); None: none.
    pub recirculation: Option<Recirculation>,
    /// Each frame is the mean of the anatomy's values over this window (s) centred on its time
    /// (a rotation's worth of data); 0: instantaneous.
    pub frame_integration_s: f64,
    /// Values stored as whole HU, as int16 series are.
    pub integer_hu: bool,
    /// Where the head lies in the scanner: (rotation vector in radians, translation in mm)
    /// applied to the anatomy of every frame (motion comes on top); None: centred and straight.
    pub pose: Option<([f64; 3], [f64; 3])>,
    /// In-plane Gaussian point spread σ (mm).
    pub psf_sigma_mm: f64,
    pub lesion: Option<Lesion>,
    pub motion: Option<Motion>,
    pub seed: u64,
}

impl BrainConfig {
    /// The case: 512 × 512 × 32 slices of 5 mm (0.45 mm pixels, 230 mm field), 30
    /// frames every 2 s, arterial peak 300 ΔHU, the typical lesion, no noise, no motion.
    pub fn clinical() -> BrainConfig {
        BrainConfig {
            dims: [512, 512, 32],
            pixel_mm: 0.45,
            slice_mm: 5.0,
            n_frames: 30,
            frame_interval_s: 2.0,
            first_frame_s: 0.0,
            aif_peak_hu: 300.0,
            noise_hu: 0.0,
            noise_correlation_px: 0.0,
            recirculation: None,
            frame_integration_s: 0.0,
            integer_hu: false,
            pose: None,
            psf_sigma_mm: 0.7,
            lesion: Some(Lesion::typical()),
            motion: None,
            seed: 1,
        }
    }

    /// A study as a scanner delivers it: 256 × 256 × 8 slices of 0.9 × 0.9 × 5 mm, 45 frames
    /// every 1.5 s, each integrated over 0.5 s; a 12 % recirculation 15 s after the first pass;
    /// noise correlated over 0.8 pixel; a 0.5-pixel point spread; int16 values; the head
    /// turned 6° and 4 mm off centre; the graded, irregular lesion of `Lesion::graded`.
    /// Set `noise_hu` for the noise.
    pub fn scanner_like(seed: u64) -> BrainConfig {
        BrainConfig {
            dims: [256, 256, 8],
            pixel_mm: 0.9,
            slice_mm: 5.0,
            n_frames: 45,
            frame_interval_s: 1.5,
            first_frame_s: 0.0,
            aif_peak_hu: 300.0,
            noise_hu: 0.0,
            noise_correlation_px: 0.8,
            recirculation: Some(Recirculation { share: 0.12, delay_s: 15.0, dispersion: 2.0 }),
            frame_integration_s: 0.5,
            integer_hu: true,
            pose: Some(([0.0, 0.0, 6f64.to_radians()], [4.0, -3.0, 0.0])),
            psf_sigma_mm: 0.45,
            lesion: Some(Lesion::graded(seed)),
            motion: None,
            seed,
        }
    }

    /// The same head on a coarser grid (`factor` times fewer voxels along x and y, the pixels
    /// that much larger): the anatomy in mm is unchanged.
    pub fn downsampled(mut self, factor: usize) -> BrainConfig {
        self.dims[0] /= factor;
        self.dims[1] /= factor;
        self.pixel_mm *= factor as f64;
        self
    }

    pub fn geometry(&self) -> VolumeGeometry {
        VolumeGeometry::centered(self.dims, [self.pixel_mm, self.pixel_mm, self.slice_mm], [0.0; 3])
            .expect("positive brain phantom grid")
    }

    pub fn times_s(&self) -> Vec<f64> {
        (0..self.n_frames).map(|i| self.first_frame_s + i as f64 * self.frame_interval_s).collect()
    }

    /// One voxel's volume (mL).
    pub fn voxel_ml(&self) -> f64 {
        self.pixel_mm * self.pixel_mm * self.slice_mm / 1000.0
    }
}

/// Normal tissue perfusion (CBF mL/100 g/min, MTT s).
pub const GREY_NORMAL: (f64, f64) = (60.0, 4.0);
pub const WHITE_NORMAL: (f64, f64) = (25.0, 5.0);
/// The venous curve: the arterial one delayed and dispersed (area kept).
pub const VENOUS_DELAY_S: f64 = 6.0;
pub const VENOUS_DISPERSION_S: f64 = 3.0;

/// The exact figures of a brain phantom.
#[derive(Debug, Clone, PartialEq)]
pub struct BrainTruth {
    /// Class at the centre of every voxel of the unmoved head, `[z][y][x]`.
    pub labels: Array3<u8>,
    pub core_ml: f64,
    /// Core + penumbra: every lesion voxel has Tmax > 6 s.
    pub tmax6_ml: f64,
    /// Voxels with Tmax > 10 s (the core).
    pub tmax10_ml: f64,
    pub brain_tissue_ml: f64,
    /// The arterial and venous curves as they are in a large vessel (ΔHU at the frame times).
    pub aif: Vec<f64>,
    pub vof: Vec<f64>,
    /// Rigid motion per frame: (rotation axis·angle in radians, translation mm), zero when still.
    pub motion: Vec<([f64; 3], [f64; 3])>,
    /// Perfusion of every tissue class, by class number (None for non-tissue).
    pub class_perfusion: Vec<Option<Tissue>>,
    /// CBF (mL/100 g/min) of every voxel as partial volume makes it: the mean over its
    /// slice-profile depths, 0 where a depth is not tissue; `[z][y][x]`.
    pub cbf_pv: Array3<f32>,
}

impl BrainTruth {
    pub fn mismatch_ml(&self) -> f64 {
        self.tmax6_ml - self.core_ml
    }
    /// None for no core (an infinite ratio).
    pub fn mismatch_ratio(&self) -> Option<f64> {
        (self.core_ml > 0.0).then(|| self.tmax6_ml / self.core_ml)
    }
    pub fn defuse3(&self) -> bool {
        self.core_ml < 70.0 && self.mismatch_ratio().is_none_or(|r| r >= 1.8) && self.mismatch_ml() >= 15.0
    }
    pub fn extend(&self) -> bool {
        self.core_ml < 70.0 && self.mismatch_ratio().is_none_or(|r| r > 1.2) && self.mismatch_ml() > 10.0
    }
    /// Whether every figure the flags are read from lies at least `margin` (relative) from its
    /// cut-off, so the flags are fairly judged.
    pub fn clear_of_cutoffs(&self, margin: f64) -> bool {
        let far = |v: f64, cut: f64| (v - cut).abs() >= margin * cut;
        far(self.core_ml, 70.0)
            && far(self.mismatch_ml(), 15.0)
            && far(self.mismatch_ml(), 10.0)
            && self.mismatch_ratio().is_none_or(|r| far(r, 1.8) && far(r, 1.2))
    }
}

/// The simulated study and its truth.
#[derive(Debug, Clone)]
pub struct BrainPhantom {
    pub series: VolumeSeries,
    pub truth: BrainTruth,
}

struct Ellipsoid {
    c: [f64; 3],
    r: [f64; 3],
}

impl Ellipsoid {
    fn new(c: [f64; 3], r: [f64; 3]) -> Self {
        Ellipsoid { c, r }
    }
    fn q(&self, p: [f64; 3]) -> f64 {
        (0..3).map(|i| ((p[i] - self.c[i]) / self.r[i]).powi(2)).sum()
    }
    fn contains(&self, p: [f64; 3]) -> bool {
        self.q(p) <= 1.0
    }
}

/// The analytic head: the class at an LPS point (mm).
struct Head {
    scalp: Ellipsoid,
    skull: Ellipsoid,
    inner_skull: Ellipsoid,
    brain: Ellipsoid,
    white: Ellipsoid,
    deep: [Ellipsoid; 2],
    ventricles: [Ellipsoid; 2],
    /// Skull base, petrous ridges, occipital protuberance, frontal crest: the asymmetric bone
    /// that makes every rotation visible (an ellipsoidal vault alone is nearly symmetric).
    bones: [Ellipsoid; 5],
    lesion: Option<Lesion>,
}

impl Head {
    fn new(lesion: Option<Lesion>) -> Head {
        Head {
            scalp: Ellipsoid::new([0.0; 3], [71.5, 89.5, 81.5]),
            skull: Ellipsoid::new([0.0; 3], [67.5, 85.5, 77.5]),
            inner_skull: Ellipsoid::new([0.0; 3], [61.5, 79.5, 71.5]),
            brain: Ellipsoid::new([0.0; 3], [60.0, 78.0, 70.0]),
            white: Ellipsoid::new([0.0; 3], [55.5, 73.5, 65.5]),
            deep: [
                Ellipsoid::new([-20.0, 0.0, -5.0], [10.0, 18.0, 14.0]),
                Ellipsoid::new([20.0, 0.0, -5.0], [10.0, 18.0, 14.0]),
            ],
            ventricles: [
                Ellipsoid::new([-7.0, 0.0, 10.0], [5.0, 22.0, 14.0]),
                Ellipsoid::new([7.0, 0.0, 10.0], [5.0, 22.0, 14.0]),
            ],
            bones: [
                Ellipsoid::new([0.0, 5.0, -64.0], [48.0, 50.0, 6.0]),
                Ellipsoid::new([-28.0, 18.0, -50.0], [24.0, 5.0, 6.0]),
                Ellipsoid::new([28.0, 18.0, -50.0], [24.0, 5.0, 6.0]),
                Ellipsoid::new([0.0, 80.0, -25.0], [14.0, 7.0, 10.0]),
                Ellipsoid::new([0.0, -76.0, -35.0], [3.0, 8.0, 22.0]),
            ],
            lesion,
        }
    }

    fn in_artery(p: [f64; 3]) -> bool {
        const R2: f64 = 1.2 * 1.2;
        // Anterior cerebral pair: vertical, either side of the midline, anterior.
        let aca = p[2] > -45.0
            && p[2] < 50.0
            && [-2.5, 2.5].iter().any(|&x| (p[0] - x).powi(2) + (p[1] + 45.0).powi(2) <= R2);
        // Middle cerebral trunks: lateral in the Sylvian fissures (x along the vessel).
        let mca = p[0].abs() > 12.0 && p[0].abs() < 48.0 && (p[1] + 8.0).powi(2) + (p[2] + 22.5).powi(2) <= R2;
        // Posterior cerebral pair: oblique, rising backwards and outwards through the slab.
        let pca =
            [-1.0, 1.0].iter().any(|&s| segment_distance2(p, [s * 6.0, 12.0, -22.0], [s * 30.0, 50.0, 12.0]) <= R2);
        aca || mca || pca
    }

    fn in_sinus(&self, p: [f64; 3]) -> bool {
        // Superior sagittal sinus: a 7 mm midline band just inside the posterior and upper skull.
        p[0].abs() <= 3.5 && p[1] > 10.0 && p[2] > -30.0 && self.inner_skull.contains(p) && {
            let inner = Ellipsoid::new([0.0; 3], [53.5, 71.5, 63.5]);
            !inner.contains(p)
        }
    }

    fn class(&self, p: [f64; 3]) -> BrainClass {
        use BrainClass::*;
        if !self.scalp.contains(p) {
            return Air;
        }
        if !self.skull.contains(p) {
            return Scalp;
        }
        if !self.inner_skull.contains(p) || self.bones.iter().any(|b| b.contains(p)) {
            return Skull;
        }
        if self.in_sinus(p) {
            return Sinus;
        }
        if Head::in_artery(p) {
            return Artery;
        }
        if !self.brain.contains(p) || self.ventricles.iter().any(|v| v.contains(p)) {
            return Csf;
        }
        let grey = !self.white.contains(p) || self.deep.iter().any(|d| d.contains(p));
        if let Some(l) = &self.lesion {
            let (dx, dy) = (p[0], p[1] + 5.0);
            let signed = dy.atan2(dx).to_degrees();
            let angle = signed.abs();
            let radius = dx.hypot(dy);
            let in_z = |(lo, hi): (f64, f64)| p[2] >= lo && p[2] <= hi;
            // Boundaries wander smoothly (0 for straight edges), each its own field.
            let edge = |which: u64, value: f64| value * (1.0 + l.irregularity * l.wander(which, radius, p[2], signed));
            let pick = |g: BrainClass, w: BrainClass| if grey { g } else { w };
            if p[0] > 8.0
                && angle <= edge(1, l.core_half_angle_deg)
                && in_z(l.core_z_mm)
                && radius >= edge(2, l.core_min_radius_mm)
            {
                return pick(GreyCore, WhiteCore);
            }
            if p[0] > 8.0 && in_z(l.penumbra_z_mm) {
                let inner = edge(3, l.penumbra_half_angle_deg);
                if angle <= inner {
                    return pick(GreyPenumbra, WhitePenumbra);
                }
                let outer = inner + l.outer_penumbra.map_or(0.0, |(deg, _)| deg);
                if angle <= outer {
                    return pick(GreyOuterPenumbra, WhiteOuterPenumbra);
                }
                if angle <= outer + l.oligaemia.map_or(0.0, |(deg, _)| deg) {
                    return pick(GreyOligaemia, WhiteOligaemia);
                }
            }
        }
        if grey {
            GreyMatter
        } else {
            WhiteMatter
        }
    }
}

/// Squared distance from `p` to the segment from `a` to `b`.
fn segment_distance2(p: [f64; 3], a: [f64; 3], b: [f64; 3]) -> f64 {
    let ab: [f64; 3] = std::array::from_fn(|i| b[i] - a[i]);
    let ap: [f64; 3] = std::array::from_fn(|i| p[i] - a[i]);
    let len2: f64 = ab.iter().map(|v| v * v).sum();
    let u = (ab.iter().zip(&ap).map(|(x, y)| x * y).sum::<f64>() / len2).clamp(0.0, 1.0);
    (0..3).map(|i| (ap[i] - u * ab[i]).powi(2)).sum()
}

/// Rotation matrix for an axis·angle vector (radians), Rodrigues.
pub fn rotation_matrix(w: [f64; 3]) -> [[f64; 3]; 3] {
    let th = (w[0] * w[0] + w[1] * w[1] + w[2] * w[2]).sqrt();
    if th < 1e-15 {
        return [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
    }
    let k = [w[0] / th, w[1] / th, w[2] / th];
    let (s, c) = th.sin_cos();
    let v = 1.0 - c;
    [
        [c + k[0] * k[0] * v, k[0] * k[1] * v - k[2] * s, k[0] * k[2] * v + k[1] * s],
        [k[1] * k[0] * v + k[2] * s, c + k[1] * k[1] * v, k[1] * k[2] * v - k[0] * s],
        [k[2] * k[0] * v - k[1] * s, k[2] * k[1] * v + k[0] * s, c + k[2] * k[2] * v],
    ]
}

/// Sub-samples per voxel along z: a voxel's value is the mean over its slice thickness.
pub const Z_SUBSAMPLES: usize = 5;

/// Class maps of the head on `geometry` at the `Z_SUBSAMPLES` depths of every slice
/// (`[sub][z][y][x]`), placed by `pose` and then moved by (w, t): the voxel at p shows the
/// anatomy at R_poseᵀ(Rᵀ(p − t) − t_pose).
fn label_volume(
    head: &Head,
    geometry: &VolumeGeometry,
    pose: ([f64; 3], [f64; 3]),
    w: [f64; 3],
    t: [f64; 3],
) -> Array4<u8> {
    let [nz, ny, nx] = geometry.shape_zyx();
    let r = rotation_matrix(w);
    let (rp, tp) = (rotation_matrix(pose.0), pose.1);
    let mut labels = Array4::<u8>::zeros((Z_SUBSAMPLES, nz, ny, nx));
    for (sub, mut vol) in labels.axis_iter_mut(Axis(0)).enumerate() {
        let dz = (sub as f64 + 0.5) / Z_SUBSAMPLES as f64 - 0.5;
        vol.axis_iter_mut(Axis(0)).into_par_iter().enumerate().for_each(|(k, mut slice)| {
            for j in 0..ny {
                for i in 0..nx {
                    let p = geometry.position_mm(i as f64, j as f64, k as f64 + dz);
                    let d = [p[0] - t[0], p[1] - t[1], p[2] - t[2]];
                    let q: [f64; 3] = std::array::from_fn(|a| (0..3).map(|b| r[b][a] * d[b]).sum::<f64>());
                    let d = [q[0] - tp[0], q[1] - tp[1], q[2] - tp[2]];
                    let q = std::array::from_fn(|a| (0..3).map(|b| rp[b][a] * d[b]).sum::<f64>());
                    slice[[j, i]] = head.class(q) as u8;
                }
            }
        });
    }
    labels
}

/// A normalised 1D Gaussian of σ pixels reaching 3σ; `[1]` below 0.05 pixel.
fn gaussian_kernel(sigma_px: f64) -> Vec<f32> {
    if sigma_px <= 0.05 {
        return vec![1.0];
    }
    let r = (3.0 * sigma_px).ceil() as i64;
    let w: Vec<f64> = (-r..=r).map(|o| (-(o * o) as f64 / (2.0 * sigma_px * sigma_px)).exp()).collect();
    let s: f64 = w.iter().sum();
    w.iter().map(|v| (v / s) as f32).collect()
}

/// Separable in-plane Gaussian blur of one slice.
fn blur_slice(img: &mut [f32], scratch: &mut [f32], nx: usize, ny: usize, kernel: &[f32]) {
    let r = kernel.len() / 2;
    for j in 0..ny {
        let row = &img[j * nx..(j + 1) * nx];
        for i in 0..nx {
            let mut s = 0.0;
            for (o, &w) in kernel.iter().enumerate() {
                let ii = (i + o).saturating_sub(r).min(nx - 1);
                s += w * row[ii];
            }
            scratch[j * nx + i] = s;
        }
    }
    for j in 0..ny {
        for i in 0..nx {
            let mut s = 0.0;
            for (o, &w) in kernel.iter().enumerate() {
                let jj = (j + o).saturating_sub(r).min(ny - 1);
                s += w * scratch[jj * nx + i];
            }
            img[j * nx + i] = s;
        }
    }
}

impl BrainPhantom {
    pub fn new(config: &BrainConfig) -> BrainPhantom {
        let geometry = config.geometry();
        let times = config.times_s();
        let head = Head::new(config.lesion);
        let pose = config.pose.unwrap_or(([0.0; 3], [0.0; 3]));
        let sub_labels = label_volume(&head, &geometry, pose, [0.0; 3], [0.0; 3]);

        // Enhancement curve of every class, each frame the mean over its integration window.
        let mut aif = GammaVariate::default_aif(config.aif_peak_hu);
        if let Some(r) = config.recirculation {
            aif = aif.with_recirculation(r);
        }
        let integrate = |f: &dyn Fn(&[f64]) -> Vec<f64>| -> Vec<f64> {
            if config.frame_integration_s <= 0.0 {
                return f(&times);
            }
            const N: usize = 11;
            let mut sum = vec![0.0; times.len()];
            for j in 0..N {
                let off = (j as f64 / (N - 1) as f64 - 0.5) * config.frame_integration_s;
                let shifted: Vec<f64> = times.iter().map(|t| t + off).collect();
                sum.iter_mut().zip(f(&shifted)).for_each(|(s, v)| *s += v / N as f64);
            }
            sum
        };
        let tissue = |(cbf, mtt): (f64, f64), delay: f64| Tissue {
            cbf,
            mtt_s: mtt,
            delay_s: delay,
            dispersion_s: 0.0,
            residue: Residue::Exponential,
        };
        let lesioned = |normal: (f64, f64), h: Hypoperfusion| tissue((normal.0 * h.cbf_factor, h.mtt_s), h.delay_s);
        let lesion = config.lesion.unwrap_or_else(Lesion::typical);
        let arterial = integrate(&|t| arterial_curve(&aif, 0.0, 0.0, t));
        let venous = integrate(&|t| arterial_curve(&aif, VENOUS_DELAY_S, VENOUS_DISPERSION_S, t));
        let outer = lesion.outer_penumbra.map_or(lesion.penumbra, |(_, h)| h);
        let oligaemia = lesion.oligaemia.map_or(lesion.penumbra, |(_, h)| h);
        let class_perfusion: Vec<Option<Tissue>> = (0..N_CLASSES as u8)
            .map(|c| {
                use BrainClass::*;
                let class = BrainClass::from_u8(c);
                let normal = if class.is_grey() { GREY_NORMAL } else { WHITE_NORMAL };
                match class {
                    Air | Scalp | Skull | Csf | Artery | Sinus => None,
                    GreyMatter | WhiteMatter => Some(tissue(normal, 0.0)),
                    GreyPenumbra | WhitePenumbra => Some(lesioned(normal, lesion.penumbra)),
                    GreyOuterPenumbra | WhiteOuterPenumbra => Some(lesioned(normal, outer)),
                    GreyOligaemia | WhiteOligaemia => Some(lesioned(normal, oligaemia)),
                    GreyCore | WhiteCore => Some(lesioned(normal, lesion.core)),
                }
            })
            .collect();
        let curves: Vec<Vec<f64>> = (0..N_CLASSES as u8)
            .map(|c| match (BrainClass::from_u8(c), class_perfusion[c as usize]) {
                (BrainClass::Artery, _) => arterial.clone(),
                (BrainClass::Sinus, _) => venous.clone(),
                (_, Some(t)) => integrate(&|ts| tissue_curve(&aif, &t, ts)),
                (_, None) => vec![0.0; times.len()],
            })
            .collect();

        // Motion: a seeded choice of frames (never the first), each with its own direction.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(config.seed ^ 0x6d6f_7469_6f6e);
        let mut motion = vec![([0.0; 3], [0.0; 3]); config.n_frames];
        if let Some(m) = config.motion {
            let n_moved =
                ((config.n_frames as f64 * m.fraction).round() as usize).min(config.n_frames.saturating_sub(1));
            let mut frames: Vec<usize> = (1..config.n_frames).collect();
            for i in 0..n_moved {
                let j = i + (rand::Rng::random::<u64>(&mut rng) as usize) % (frames.len() - i);
                frames.swap(i, j);
                let unit = |rng: &mut rand_chacha::ChaCha8Rng| -> [f64; 3] {
                    let v: [f64; 3] = std::array::from_fn(|_| rand::Rng::random::<f64>(rng) * 2.0 - 1.0);
                    let n = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt().max(1e-9);
                    v.map(|x| x / n)
                };
                let mut axis = unit(&mut rng);
                // Mostly nodding and turning within the plane, as heads do on the table.
                axis[2] = axis[2].signum() * axis[2].abs().max(0.8);
                let n = (axis[0] * axis[0] + axis[1] * axis[1] + axis[2] * axis[2]).sqrt();
                let w = axis.map(|a| a / n * m.rotation_deg.to_radians());
                let t = unit(&mut rng).map(|a| a * m.translation_mm);
                motion[frames[i]] = (w, t);
            }
        }

        let [nz, ny, nx] = geometry.shape_zyx();
        let kernel = gaussian_kernel(config.psf_sigma_mm / config.pixel_mm);
        let base: Vec<f32> = (0..N_CLASSES as u8).map(|c| BrainClass::from_u8(c).baseline_hu() as f32).collect();
        let normal = Normal::new(0.0f32, config.noise_hu.max(0.0) as f32).expect("finite noise");
        // Correlated noise: white noise blurred by a Gaussian of σ_c pixels, rescaled by the
        // kernel's 2D norm so each voxel keeps σ.
        let noise_kernel = gaussian_kernel(config.noise_correlation_px);
        let noise_gain = 1.0 / noise_kernel.iter().map(|w| w * w).sum::<f32>();
        let mut data = Array4::<f32>::zeros((config.n_frames, nz, ny, nx));
        for (ti, mut frame) in data.axis_iter_mut(Axis(0)).enumerate() {
            let (w, t) = motion[ti];
            let moved;
            let frame_labels = if w == [0.0; 3] && t == [0.0; 3] {
                &sub_labels
            } else {
                moved = label_volume(&head, &geometry, pose, w, t);
                &moved
            };
            let value: Vec<f32> = (0..N_CLASSES).map(|c| base[c] + curves[c][ti] as f32).collect();
            frame.axis_iter_mut(Axis(0)).into_par_iter().enumerate().for_each(|(k, mut slice)| {
                let mut img = vec![0f32; nx * ny];
                for sub in 0..Z_SUBSAMPLES {
                    let lab = frame_labels.index_axis(Axis(0), sub);
                    let lab = lab.index_axis(Axis(0), k);
                    for (v, &c) in img.iter_mut().zip(lab.iter()) {
                        *v += value[c as usize];
                    }
                }
                img.iter_mut().for_each(|v| *v /= Z_SUBSAMPLES as f32);
                let mut scratch = vec![0f32; nx * ny];
                if kernel.len() > 1 {
                    blur_slice(&mut img, &mut scratch, nx, ny, &kernel);
                }
                if config.noise_hu > 0.0 {
                    let stream = (ti as u64) << 32 | k as u64;
                    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(
                        config.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ stream,
                    );
                    let mut noise: Vec<f32> = (0..nx * ny).map(|_| normal.sample(&mut rng)).collect();
                    if noise_kernel.len() > 1 {
                        blur_slice(&mut noise, &mut scratch, nx, ny, &noise_kernel);
                    }
                    for (v, n) in img.iter_mut().zip(&noise) {
                        *v += n * noise_gain;
                    }
                }
                if config.integer_hu {
                    img.iter_mut().for_each(|v| *v = v.round().clamp(-32768.0, 32767.0));
                }
                for (d, s) in slice.iter_mut().zip(&img) {
                    *d = *s;
                }
            });
        }
        let series = VolumeSeries::new(geometry, times, data)
            .expect("consistent brain phantom")
            .with_quantity(Quantity::Hounsfield);

        // Exact to a fifth of a voxel: the volumes count the sub-samples.
        let count = |f: &dyn Fn(BrainClass) -> bool| {
            sub_labels.iter().filter(|&&c| f(BrainClass::from_u8(c))).count() as f64 * config.voxel_ml()
                / Z_SUBSAMPLES as f64
        };
        let core_ml = count(&|c| c.is_core());
        let penumbra_ml = count(&|c| c.is_penumbra());
        let labels = sub_labels.index_axis(Axis(0), Z_SUBSAMPLES / 2).to_owned();
        let class_cbf: Vec<f32> = class_perfusion.iter().map(|t| t.map_or(0.0, |t| t.cbf as f32)).collect();
        let cbf_pv = sub_labels.map_axis(Axis(0), |depths| {
            depths.iter().map(|&c| class_cbf[c as usize]).sum::<f32>() / Z_SUBSAMPLES as f32
        });
        let truth = BrainTruth {
            core_ml,
            tmax6_ml: core_ml + penumbra_ml,
            tmax10_ml: core_ml,
            brain_tissue_ml: count(&|c| c.is_tissue()),
            labels,
            aif: arterial,
            vof: venous,
            motion,
            class_perfusion,
            cbf_pv,
        };
        BrainPhantom { series, truth }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typical_lesion_has_the_volumes_it_is_meant_to_have() {
        let c = BrainConfig { n_frames: 3, ..BrainConfig::clinical().downsampled(4) };
        let p = BrainPhantom::new(&c);
        let t = &p.truth;
        eprintln!("core {} tmax6 {} brain {}", t.core_ml, t.tmax6_ml, t.brain_tissue_ml);
        assert!(t.core_ml > 20.0 && t.core_ml < 45.0, "core {}", t.core_ml);
        assert!(t.tmax6_ml > 100.0 && t.tmax6_ml < 170.0, "tmax6 {}", t.tmax6_ml);
        assert!(t.brain_tissue_ml > 900.0 && t.brain_tissue_ml < 1500.0, "brain {}", t.brain_tissue_ml);
        assert!(t.defuse3() && t.extend() && t.clear_of_cutoffs(0.2));
        let big = BrainPhantom::new(&BrainConfig { lesion: Some(Lesion::large_core()), ..c.clone() });
        eprintln!("big core {} tmax6 {}", big.truth.core_ml, big.truth.tmax6_ml);
        assert!(
            big.truth.clear_of_cutoffs(0.2) && big.truth.core_ml > 85.0 && !big.truth.defuse3() && !big.truth.extend(),
            "{}",
            big.truth.core_ml
        );
        let mimic = BrainPhantom::new(&BrainConfig { lesion: None, ..c });
        assert_eq!(mimic.truth.core_ml, 0.0);
        assert_eq!(mimic.truth.tmax6_ml, 0.0);
    }

    #[test]
    fn frames_carry_the_curves_and_repeat_with_the_seed() {
        let c = BrainConfig { noise_hu: 5.0, psf_sigma_mm: 0.0, ..BrainConfig::clinical().downsampled(8) };
        let a = BrainPhantom::new(&c);
        let b = BrainPhantom::new(&c);
        assert_eq!(a.series.data, b.series.data);
        // Mean over white-matter voxels of the difference frame − frame 0 follows the curve.
        let wm = WHITE_NORMAL;
        let curve = tissue_curve(
            &GammaVariate::default_aif(c.aif_peak_hu),
            &Tissue { cbf: wm.0, mtt_s: wm.1, delay_s: 0.0, dispersion_s: 0.0, residue: Residue::Exponential },
            &c.times_s(),
        );
        // Voxels deep in white matter (all 26 neighbours' centres too): free of partial volume
        // across the slice.
        let l = &a.truth.labels;
        let (nz, ny, nx) = l.dim();
        let wm = BrainClass::WhiteMatter as u8;
        let mut idx = Vec::new();
        for k in 1..nz - 1 {
            for j in 1..ny - 1 {
                for i in 1..nx - 1 {
                    let deep = (0..27).all(|o| l[[k + o / 9 - 1, j + (o / 3) % 3 - 1, i + o % 3 - 1]] == wm);
                    if deep {
                        idx.push((k * ny + j) * nx + i);
                    }
                }
            }
        }
        assert!(idx.len() > 1000, "{} deep white-matter voxels", idx.len());
        let n = idx.len() as f64;
        for t in [6, 10, 20] {
            let frame = a.series.data.index_axis(Axis(0), t);
            let f = frame.as_slice().unwrap();
            let mean = idx.iter().map(|&i| f[i] as f64).sum::<f64>() / n;
            let want = 28.0 + curve[t];
            // Noise of the mean: 5/√n.
            assert!((mean - want).abs() < 5.0 * 5.0 / n.sqrt(), "t {t}: {mean} vs {want}");
        }
    }

    #[test]
    fn correlated_noise_has_the_stated_sigma_and_correlation() {
        let base = BrainConfig {
            n_frames: 2,
            psf_sigma_mm: 0.0,
            lesion: None,
            noise_correlation_px: 0.8,
            ..BrainConfig::clinical().downsampled(2)
        };
        let clean = BrainPhantom::new(&base);
        for (corr, want_lag1) in [(0.0, 0.0), (0.8, (-1.0f64 / (4.0 * 0.64)).exp())] {
            let noisy = BrainPhantom::new(&BrainConfig { noise_hu: 6.0, noise_correlation_px: corr, ..base.clone() });
            let d = &noisy.series.data - &clean.series.data;
            let n = d.len() as f64;
            let var = d.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / n;
            assert!((var.sqrt() - 6.0).abs() < 0.06, "σ {} for correlation {corr}", var.sqrt());
            // Lag-1 autocorrelation along x: a Gaussian blur of σ_c gives exp(−1/(4σ_c²)).
            let (nt, nz, ny, nx) = d.dim();
            let mut c = 0.0;
            for t in 0..nt {
                for k in 0..nz {
                    for j in 0..ny {
                        for i in 0..nx - 1 {
                            c += (d[[t, k, j, i]] * d[[t, k, j, i + 1]]) as f64;
                        }
                    }
                }
            }
            let lag1 = c / (nt * nz * ny * (nx - 1)) as f64 / var;
            assert!((lag1 - want_lag1).abs() < 0.04, "lag-1 correlation {lag1} vs {want_lag1}");
        }
    }

    #[test]
    fn scanner_like_study_is_whole_hu_with_a_graded_lesion() {
        let c = BrainConfig { n_frames: 4, noise_hu: 3.0, ..BrainConfig::scanner_like(7) };
        let p = BrainPhantom::new(&c);
        assert!(p.series.data.iter().all(|v| v.fract() == 0.0), "int16 storage: whole HU only");
        let t = &p.truth;
        let count = |f: &dyn Fn(BrainClass) -> bool| t.labels.iter().filter(|&&l| f(BrainClass::from_u8(l))).count();
        use BrainClass::*;
        for class in [GreyOuterPenumbra, WhiteOuterPenumbra, GreyOligaemia, WhiteOligaemia, GreyCore, WhiteCore] {
            assert!(count(&|c| c == class) > 300, "{class:?} is present");
        }
        // Both penumbra bands are Tmax > 6 s, the oligaemic rim is not.
        let outer = t.class_perfusion[GreyOuterPenumbra as usize].unwrap();
        let rim = t.class_perfusion[GreyOligaemia as usize].unwrap();
        assert!(outer.delay_s > 6.0 && rim.delay_s < 6.0);
        assert!(GreyOuterPenumbra.is_penumbra() && !GreyOligaemia.is_penumbra());
        assert!(t.core_ml > 10.0 && t.core_ml < 30.0 && t.tmax6_ml > 3.0 * t.core_ml, "{} {}", t.core_ml, t.tmax6_ml);
        // Irregular edges: another shape seed moves the core's boundary.
        let other = BrainPhantom::new(&BrainConfig { seed: 8, lesion: Some(Lesion::graded(8)), ..c.clone() });
        let differ = t.labels.iter().zip(other.truth.labels.iter()).filter(|(a, b)| a != b).count();
        assert!(differ > 200, "{differ} voxels differ between shape seeds");
        // The partial-volume CBF truth lies between the classes' own values.
        let (k, j, i) = (4, 128, 128);
        let v = t.cbf_pv[[k, j, i]];
        assert!((0.0..=60.0).contains(&v));
    }

    #[test]
    fn recirculation_holds_its_share_of_the_area() {
        use crate::perfusion::Recirculation;
        let first = GammaVariate::default_aif(300.0);
        let both = first.with_recirculation(Recirculation { share: 0.12, delay_s: 15.0, dispersion: 2.0 });
        let area = |g: &GammaVariate| (0..20_000).map(|i| g.value(i as f64 * 0.01) * 0.01).sum::<f64>();
        let ratio = area(&both) / area(&first) - 1.0;
        assert!((ratio - 0.12).abs() < 1e-3, "recirculated share {ratio}");
        // Nothing before the first pass, and the first pass unchanged before the second arrives.
        assert_eq!(both.value(7.9), 0.0);
        assert_eq!(both.value(20.0), first.value(20.0));
    }

    #[test]
    fn motion_moves_the_chosen_frames_only() {
        let c = BrainConfig {
            n_frames: 10,
            motion: Some(Motion { fraction: 0.2, translation_mm: 3.0, rotation_deg: 3.0 }),
            ..BrainConfig::clinical().downsampled(8)
        };
        let p = BrainPhantom::new(&c);
        let moved: Vec<usize> = (0..10).filter(|&t| p.truth.motion[t] != ([0.0; 3], [0.0; 3])).collect();
        assert_eq!(moved.len(), 2);
        assert!(!moved.contains(&0));
        for &t in &moved {
            let (w, tr) = p.truth.motion[t];
            let angle = (w[0] * w[0] + w[1] * w[1] + w[2] * w[2]).sqrt().to_degrees();
            let len = (tr[0] * tr[0] + tr[1] * tr[1] + tr[2] * tr[2]).sqrt();
            assert!((angle - 3.0).abs() < 1e-9 && (len - 3.0).abs() < 1e-9);
        }
    }
}
