//! Damaged DICOM files cost their own size in memory, never gigabytes: every VR of a written CT
//! slice changed to 0xFF or 0x00, and 300 seeded random byte changes, each read through the
//! folder scan and the series reader under a counting allocator. Each must end in a volume or an
//! error (no panic) with a peak allocation under 64 MB (the file is 9 kB; before the structural
//! check one changed VR byte made the parser allocate 2.1 GB).

use gantry_core::{Quantity, Volume, VolumeGeometry};
use gantry_io::dicom::{read_series_volume, scan_folder, write_ct_series, SeriesMeta};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;
static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator, only counting the bytes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's layout, passed on unchanged.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const LIMIT: usize = 64 << 20;

#[test]
fn damaged_files_are_bounded_in_memory_and_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let g = VolumeGeometry::centered([64, 64, 1], [3.0, 3.0, 3.0], [0.0; 3]).unwrap();
    let data = ndarray::Array3::from_shape_fn((1, 64, 64), |(_, j, i)| (i * 13 + j * 7) as f32 - 1000.0);
    let paths = write_ct_series(
        &dir.path().join("src"),
        &Volume::of(Quantity::Hounsfield, g, data).unwrap(),
        &SeriesMeta { uid_seed: Some(90), ..SeriesMeta::default() },
    )
    .unwrap();
    let raw = std::fs::read(&paths[0]).unwrap();
    let vrs: Vec<&[u8]> =
        "AE AS AT CS DA DS DT FL FD IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL UN UR US UT UV"
            .split(' ')
            .map(str::as_bytes)
            .collect();
    let mut cases: Vec<(usize, u8)> = (132..raw.len() - 6)
        .filter(|&i| vrs.contains(&&raw[i + 4..i + 6]) && raw[i].is_multiple_of(2))
        .flat_map(|i| [(i + 4, 0xFF), (i + 4, 0x00)])
        .collect();
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    for _ in 0..300 {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        cases.push((132 + (state >> 33) as usize % (raw.len() - 132), (state >> 17) as u8));
    }
    assert!(cases.len() > 350, "{}", cases.len());
    let case_dir = dir.path().join("case");
    std::fs::create_dir(&case_dir).unwrap();
    let (mut volumes, mut errors, mut worst) = (0, 0, 0usize);
    for (at, byte) in cases {
        let mut bad = raw.clone();
        bad[at] = byte;
        std::fs::write(case_dir.join("x.dcm"), &bad).unwrap();
        let base = CURRENT.load(Ordering::Relaxed);
        PEAK.store(base, Ordering::Relaxed);
        let outcome = std::panic::catch_unwind(|| {
            let scan = scan_folder(&case_dir).map_err(|e| e.to_string())?;
            let s = scan.series.first().ok_or("no series")?;
            read_series_volume(s).map(|_| ()).map_err(|e| e.to_string())
        });
        let peak = PEAK.load(Ordering::Relaxed) - base;
        worst = worst.max(peak);
        assert!(peak < LIMIT, "byte {at} set to {byte:#04x}: {peak} bytes allocated at the peak");
        match outcome {
            Ok(Ok(())) => volumes += 1,
            Ok(Err(_)) => errors += 1,
            Err(_) => panic!("byte {at} set to {byte:#04x}: the reader panicked"),
        }
    }
    println!("{volumes} read, {errors} errors, worst peak {worst} bytes");
}
