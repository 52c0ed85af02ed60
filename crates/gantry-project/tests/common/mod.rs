//! Shared by the kernel tests: seeded random data and a set of scan geometries (flat,
//! cylindrical with a quarter offset, parallel, helical, tilted).
#![allow(dead_code)]

use gantry_core::{Beam, DetectorShape, ScanGeometry, ScanProtocol};
use ndarray::Array3;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub fn random_array(shape: [usize; 3], seed: u64) -> Array3<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Array3::from_shape_fn(shape, |_| rng.random_range(-1.0f32..1.0))
}

pub fn geometries() -> Vec<(&'static str, ScanGeometry)> {
    let flat = ScanProtocol::circular_flat(200.0, 400.0, 13, 41, 23, 1.3);
    let mut cyl = flat.clone();
    cyl.detector.shape = DetectorShape::Cylindrical;
    cyl.detector.offset_u_mm = 2.1;
    let mut par = flat.clone();
    par.beam = Beam::Parallel;
    par.detector.pixel_u_mm = 0.7;
    par.detector.pixel_v_mm = 0.9;
    let mut helical = cyl.clone();
    helical.helical_pitch = Some(0.8);
    helical.arc_deg = Some(500.0);
    helical.start_z_mm = -10.0;
    let mut tilted = flat.build().unwrap();
    for v in &mut tilted.views {
        // Tilt the whole view about its u axis by 0.2 rad: a general (non-axial) geometry.
        let (s, c) = 0.2f64.sin_cos();
        let w = v.w();
        let sdd = v.sdd_mm();
        let sid = v.sid_mm();
        let new_w = [c * w[0] - s * v.v[0], c * w[1] - s * v.v[1], c * w[2] - s * v.v[2]];
        let new_v = [s * w[0] + c * v.v[0], s * w[1] + c * v.v[1], s * w[2] + c * v.v[2]];
        v.source_mm = [-sid * new_w[0], -sid * new_w[1], -sid * new_w[2]];
        v.detector_center_mm =
            [v.source_mm[0] + sdd * new_w[0], v.source_mm[1] + sdd * new_w[1], v.source_mm[2] + sdd * new_w[2]];
        v.v = new_v;
    }
    tilted.validate().unwrap();
    vec![
        ("flat", flat.build().unwrap()),
        ("cylindrical", cyl.build().unwrap()),
        ("parallel", par.build().unwrap()),
        ("helical", helical.build().unwrap()),
        ("tilted", tilted),
    ]
}
