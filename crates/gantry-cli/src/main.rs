//! # gantry
//!
//! The command line of Gantry: simulate an acquisition, reconstruct it, or run the whole chain
//! on the built-in clinical scanner and head phantom (`gantry demo`). Progress bars appear on a
//! terminal only; pipes and CI stay quiet.

mod cardiac;
mod demo;
mod dicom;
mod node;
mod progress;
mod stroke;
mod summary;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use gantry_core::units::MU_WATER_60KEV_PER_MM;
use gantry_core::{ProjectionStack, ScanGeometry, ScanProtocol, VolumeGeometry};
use gantry_phantom::{project_analytic_progress, Acquisition, Phantom};
use gantry_recon::fdk::ConeHandling;
use gantry_recon::wide_cone::ConeArtefactCorrection;
use gantry_recon::{counts_to_line_integrals, fdk, mu_to_hu_volume, FdkOptions, Window};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Parser)]
#[command(name = "gantry", version, about = "Gantry: CT simulation and reconstruction")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Scan a phantom: protocol + phantom → projections (.mha) and their geometry file.
    Simulate(SimulateArgs),
    /// Reconstruct projections (.mha + geometry) into a volume (.nii, .nii.gz or .mha), FDK.
    Recon(ReconArgs),
    /// Simulate the clinical scanner scanning the head phantom with noise, reconstruct it, and
    /// write NIfTI, PNG slices and an accuracy summary into a folder.
    Demo(demo::DemoArgs),
    /// Voxelise a built-in phantom onto a grid (the truth a reconstruction is compared with).
    Phantom(PhantomArgs),
    /// Forward-project a volume with the Joseph projector for a scan geometry.
    Project(ProjectArgs),
    /// Write one slice of a volume as a PNG with a display window.
    Slice(SliceArgs),
    /// Stroke CT perfusion: a DICOM folder or 4D NIfTI (or --demo, the synthetic brain) → CBF,
    /// CBV, MTT, Tmax, TTP maps, core and hypoperfusion volumes, mismatch, DEFUSE-3/EXTEND
    /// figures, as NIfTI, DICOM, PNG and JSON.
    Stroke(stroke::StrokeArgs),
    /// DICOM folders: list the series, import one into a volume file, export a volume as a CT
    /// series.
    Dicom(dicom::DicomArgs),
    /// Cardiac CT: `gantry cardiac ecg INPUT --json OUT` analyses an ECG (R peaks, beat classes,
    /// RR, heart rate).
    Cardiac(cardiac::CardiacArgs),
    /// A DICOM node: answers C-ECHO, stores what C-STORE sends (atomically), until interrupted.
    Serve(dicom::ServeArgs),
    /// Print a scan protocol as TOML, to edit and pass to `gantry simulate --protocol`.
    Protocol {
        /// Which preset: clinical (the wide-detector scanner) or bench (SID 1000, SDD 1500, flat).
        #[arg(long, default_value = "clinical")]
        preset: String,
    },
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq, Debug)]
enum PhantomKind {
    /// Adult head in HU (with a water vial beside it).
    Head,
    /// The modified 3D Shepp–Logan, values × 0.02 /mm.
    SheppLogan,
    /// A water cylinder of 100 mm radius.
    Water,
    /// A water cylinder of 200 mm radius (fills most of a 500 mm field of view).
    WaterLarge,
    /// Orientation check: a water cylinder (70 mm radius) with a bone bead at the patient's
    /// left, anterior, head end (LPS 35, −35, 20 mm) and a fainter one at the right (−35, 0, 0).
    Orientation,
}

#[derive(Args)]
struct SimulateArgs {
    /// Protocol TOML (see `gantry protocol`); default: the clinical wide-detector scanner.
    #[arg(long)]
    protocol: Option<PathBuf>,
    /// Acquire a short scan (180° + fan) instead of a full turn.
    #[arg(long)]
    short_scan: bool,
    #[arg(long, value_enum, default_value = "head")]
    phantom: PhantomKind,
    /// Half-size of the Shepp–Logan phantom (mm): its unit cube spans ±this.
    #[arg(long, default_value_t = 100.0)]
    phantom_half_size_mm: f64,
    /// Unattenuated counts per detector pixel and view; absent: noise-free line integrals.
    #[arg(long)]
    counts: Option<f64>,
    /// Electronic noise standard deviation in counts.
    #[arg(long, default_value_t = 0.0)]
    electronic_noise: f64,
    /// Seed of the noise.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Rays per detector pixel along u and v, averaged over the pixel's aperture (1,1: one exact
    /// line integral through each pixel centre).
    #[arg(long, value_delimiter = ',', default_value = "1,1")]
    aperture: Vec<usize>,
    /// Also write the geometry as RTK XML here (circular scans only).
    #[arg(long)]
    rtk_xml: Option<PathBuf>,
    /// Output projections (.mha); the geometry goes beside it as NAME.geometry.toml.
    #[arg(long, short)]
    output: PathBuf,
}

#[derive(Args)]
struct PhantomArgs {
    #[arg(long, value_enum, default_value = "head")]
    phantom: PhantomKind,
    /// Half-size of the Shepp–Logan phantom (mm).
    #[arg(long, default_value_t = 100.0)]
    phantom_half_size_mm: f64,
    /// Voxels along x,y,z.
    #[arg(long, value_delimiter = ',')]
    size: Vec<usize>,
    /// Voxel size along x,y,z in mm.
    #[arg(long, value_delimiter = ',')]
    spacing: Vec<f64>,
    /// Centre of the grid in mm.
    #[arg(long, value_delimiter = ',', default_value = "0,0,0", allow_hyphen_values = true)]
    center: Vec<f64>,
    /// Sub-samples per voxel edge (the voxel value is the mean of n³ points).
    #[arg(long, default_value_t = 2)]
    supersample: usize,
    /// Write μ (1/mm) instead of HU.
    #[arg(long)]
    mu: bool,
    /// μ of water (1/mm) for HU; default water at 60 keV.
    #[arg(long, default_value_t = MU_WATER_60KEV_PER_MM)]
    mu_water: f64,
    /// Output volume (.nii, .nii.gz or .mha), in HU (μ in 1/mm with --mu), in LPS.
    #[arg(long, short)]
    output: PathBuf,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq, Debug)]
enum ConeArg {
    Weighted,
    Plain,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq, Debug)]
enum PlaneArg {
    Axial,
    Coronal,
    Sagittal,
}

#[derive(Args)]
struct SliceArgs {
    /// Volume (.nii, .nii.gz, .mha).
    volume: PathBuf,
    #[arg(long, value_enum, default_value = "axial")]
    plane: PlaneArg,
    /// Slice index; default: the middle one.
    #[arg(long)]
    index: Option<usize>,
    /// Window centre and width in the volume's unit (HU for CT: 40,80 brain, 500,2000 bone).
    /// A volume of μ (1/mm) is shown in HU.
    #[arg(long, value_delimiter = ',', default_value = "40,80", allow_hyphen_values = true)]
    window: Vec<f64>,
    /// μ of water (1/mm) for showing a μ volume in HU; default water at 60 keV.
    #[arg(long, default_value_t = MU_WATER_60KEV_PER_MM)]
    mu_water: f64,
    /// Output PNG.
    #[arg(long, short)]
    output: PathBuf,
}

#[derive(Args)]
struct ProjectArgs {
    /// Volume to project (.nii, .nii.gz, .mha): μ in 1/mm, or HU (converted with --mu-water)
    /// when the file says so.
    volume: PathBuf,
    /// μ of water (1/mm) for converting a volume in HU; default water at 60 keV.
    #[arg(long, default_value_t = MU_WATER_60KEV_PER_MM)]
    mu_water: f64,
    /// Scan geometry (Gantry TOML) or protocol (with --protocol).
    #[arg(long)]
    geometry: Option<PathBuf>,
    /// A scan protocol TOML instead of a geometry file.
    #[arg(long)]
    protocol: Option<PathBuf>,
    /// Output projections (.mha) with their geometry beside.
    #[arg(long, short)]
    output: PathBuf,
    /// Write the time of the projection step as JSON here.
    #[arg(long)]
    timing_json: Option<PathBuf>,
}

#[derive(Args)]
pub(crate) struct ReconArgs {
    /// Projections (.mha) holding line integrals.
    input: PathBuf,
    /// Geometry file (Gantry TOML or RTK XML); default: NAME.geometry.toml beside the input.
    #[arg(long)]
    geometry: Option<PathBuf>,
    /// Output volume (.nii, .nii.gz or .mha).
    #[arg(long, short)]
    output: PathBuf,
    /// Voxels along x,y,z of the output frame (LPS; RTK's frame for RTK geometry, whose y is
    /// the rotation axis); default: 256 × 256 across the rotation axis, one slice per detector
    /// row along it.
    #[arg(long, value_delimiter = ',')]
    size: Option<Vec<usize>>,
    /// Voxel size along x,y,z in mm, in the same order; default: the field of view over 256
    /// across the rotation axis, the row pitch at isocentre along it.
    #[arg(long, value_delimiter = ',')]
    spacing: Option<Vec<f64>>,
    /// Centre of the volume in mm (default 0,0,0).
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
    center: Option<Vec<f64>>,
    /// Centre of the first voxel in mm (ITK's and RTK's origin), instead of --center.
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
    origin: Option<Vec<f64>>,
    /// Ramp window: ram-lak, shepp-logan, cosine, hamming or hann.
    #[arg(long, default_value = "ram-lak")]
    filter: String,
    /// Window cut-off as a fraction of Nyquist.
    #[arg(long, default_value_t = 1.0)]
    cutoff: f64,
    /// Views filtered and backprojected at a time (bounds memory).
    #[arg(long, default_value_t = 8)]
    subset_size: usize,
    /// Wide-cone handling of a full circular turn: weighted (cone-parallel rebinning and the
    /// cone-angle weighting: the outer slices of a wide detector as right as the central ones)
    /// or plain (fan-beam FDK, as RTK). Other scans are always reconstructed plain.
    #[arg(long, value_enum, default_value = "weighted")]
    cone: ConeArg,
    /// After the weighted reconstruction, correct cone artefacts (an idealised copy of the
    /// image reprojected and reconstructed; about three times the time).
    #[arg(long)]
    cone_correction: bool,
    /// Write μ (1/mm) instead of HU.
    #[arg(long)]
    mu: bool,
    /// μ of water (1/mm) for HU; default water at 60 keV.
    #[arg(long, default_value_t = MU_WATER_60KEV_PER_MM)]
    mu_water: f64,
    /// Write the time of each step as JSON here.
    #[arg(long)]
    timing_json: Option<PathBuf>,
}

fn main() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("GANTRY_LOG").unwrap_or_else(|_| "warn".into());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Simulate(a) => simulate(a),
        Command::Recon(a) => recon(a).map(|_| ()),
        Command::Demo(a) => demo::run(a),
        Command::Phantom(a) => phantom_cmd(a),
        Command::Project(a) => project_cmd(a),
        Command::Slice(a) => slice_cmd(a),
        Command::Protocol { preset } => protocol(&preset),
        Command::Dicom(a) => dicom::run(a),
        Command::Stroke(a) => stroke::run(a),
        Command::Serve(a) => dicom::serve(a),
        Command::Cardiac(a) => cardiac::run(a),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

pub(crate) fn preset(name: &str) -> Result<ScanProtocol> {
    Ok(match name {
        "clinical" => ScanProtocol::clinical_wide_detector(),
        "bench" => ScanProtocol::circular_flat(1000.0, 1500.0, 360, 512, 384, 0.8),
        other => bail!("unknown preset {other:?}: choose clinical or bench"),
    })
}

fn protocol(name: &str) -> Result<()> {
    let p = preset(name)?;
    print!("# Gantry scan protocol ({name}); distances in mm, angles in degrees.\n{}", toml::to_string(&p)?);
    Ok(())
}

pub(crate) fn phantom(kind: PhantomKind, half_size_mm: f64) -> Phantom {
    match kind {
        PhantomKind::Head => demo::head_with_vial(),
        PhantomKind::SheppLogan => {
            Phantom::shepp_logan_3d(half_size_mm).scaled(0.02).with_quantity(gantry_core::Quantity::LinearAttenuation)
        }
        PhantomKind::Water => Phantom::water_cylinder(100.0, 400.0, MU_WATER_60KEV_PER_MM),
        PhantomKind::WaterLarge => Phantom::water_cylinder(200.0, 400.0, MU_WATER_60KEV_PER_MM),
        PhantomKind::Orientation => Phantom::orientation(MU_WATER_60KEV_PER_MM),
    }
}

/// Line integrals of `phantom` for `geometry`, with noise when `acq` is given.
pub(crate) fn acquire(
    phantom: &Phantom,
    geometry: &ScanGeometry,
    aperture: [usize; 2],
    acq: Option<&Acquisition>,
) -> Result<ProjectionStack> {
    let bar = progress::bar(geometry.n_views() as u64, "projecting");
    let li = project_analytic_progress(phantom, geometry, aperture[0], aperture[1], &|_| bar.inc(1));
    bar.finish_and_clear();
    match acq {
        None => Ok(li),
        Some(a) => {
            let counts = a.detect(&li)?;
            drop(li);
            Ok(counts_to_line_integrals(&counts, a.unattenuated_counts, 0.5)?)
        }
    }
}

fn slice_cmd(a: SliceArgs) -> Result<()> {
    if a.window.len() != 2 {
        bail!("--window takes centre,width; got {} values", a.window.len());
    }
    let vol = gantry_io::read_volume(&a.volume)?;
    let vol = match vol.quantity {
        gantry_core::Quantity::LinearAttenuation => {
            eprintln!("{}: μ (1/mm), shown in HU (μ water {} /mm)", a.volume.display(), a.mu_water);
            mu_to_hu_volume(&vol, a.mu_water)?
        }
        _ => vol,
    };
    let plane = match a.plane {
        PlaneArg::Axial => gantry_io::Plane::Axial,
        PlaneArg::Coronal => gantry_io::Plane::Coronal,
        PlaneArg::Sagittal => gantry_io::Plane::Sagittal,
    };
    let index = a.index.unwrap_or(gantry_io::png_slices::slices_in(&vol, plane) / 2);
    gantry_io::write_slice_png(&a.output, &vol, plane, index, a.window[0], a.window[1])?;
    eprintln!("wrote {}", a.output.display());
    Ok(())
}

fn phantom_cmd(a: PhantomArgs) -> Result<()> {
    let grid =
        VolumeGeometry::centered(xyz("--size", &a.size)?, xyz("--spacing", &a.spacing)?, xyz("--center", &a.center)?)?;
    let mu = phantom(a.phantom, a.phantom_half_size_mm).voxelize(&grid, a.supersample);
    let vol = if a.mu { mu } else { mu_to_hu_volume(&mu, a.mu_water)? };
    let unit = vol.quantity.unit();
    gantry_io::write_volume(&a.output, &vol, &format!("Gantry phantom {:?} ({unit})", a.phantom))?;
    eprintln!("wrote {}", a.output.display());
    Ok(())
}

/// The three comma-separated values x,y,z of option `name`.
fn xyz<T: Copy>(name: &str, v: &[T]) -> Result<[T; 3]> {
    match v {
        [x, y, z] => Ok([*x, *y, *z]),
        _ => bail!("{name} takes three comma-separated values x,y,z; got {}", v.len()),
    }
}

fn read_protocol(path: &std::path::Path) -> Result<ScanProtocol> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(gantry_io::parse_toml::<ScanProtocol>(path, &text, "scan protocol")?)
}

fn project_cmd(a: ProjectArgs) -> Result<()> {
    use gantry_core::Quantity;
    use gantry_project::Projector;
    let vol = gantry_io::read_volume(&a.volume)?;
    let vol = match vol.quantity {
        Quantity::LinearAttenuation | Quantity::Unspecified => vol,
        Quantity::Hounsfield => vol
            .map(|hu| gantry_core::units::hu_to_mu(hu as f64, a.mu_water) as f32)
            .with_quantity(Quantity::LinearAttenuation),
        q => bail!("{}: holds {}; only μ (1/mm) or HU can be projected", a.volume.display(), q.describe()),
    };
    let geometry = match (&a.geometry, &a.protocol) {
        (Some(g), None) => gantry_io::read_geometry(g)?,
        (None, Some(p)) => read_protocol(p)?.build()?,
        _ => bail!("give exactly one of --geometry and --protocol"),
    };
    let joseph = gantry_project::Joseph::new(vol.geometry.clone(), geometry)?;
    let t = Instant::now();
    let proj = joseph.project(&vol)?;
    let secs = t.elapsed().as_secs_f64();
    gantry_io::write_projections(&a.output, &proj)?;
    eprintln!("projected in {secs:.2} s; wrote {}", a.output.display());
    if let Some(p) = &a.timing_json {
        gantry_io::atomic::write_bytes(
            p,
            serde_json::to_string_pretty(&serde_json::json!({ "project_s": secs }))?.as_bytes(),
        )?;
    }
    Ok(())
}

fn simulate(a: SimulateArgs) -> Result<()> {
    let mut p = match &a.protocol {
        Some(path) => read_protocol(path)?,
        None => ScanProtocol::clinical_wide_detector(),
    };
    if a.short_scan {
        p.short_scan = true;
    }
    let geometry = p.build()?;
    let acq = a.counts.map(|c| Acquisition {
        unattenuated_counts: c,
        electronic_noise_counts: a.electronic_noise,
        seed: a.seed,
    });
    let t = Instant::now();
    if a.aperture.len() != 2 || a.aperture.contains(&0) {
        bail!("--aperture takes two counts u,v of at least 1; got {:?}", a.aperture);
    }
    let aperture = [a.aperture[0], a.aperture[1]];
    let stack = acquire(&phantom(a.phantom, a.phantom_half_size_mm), &geometry, aperture, acq.as_ref())?;
    tracing::info!("simulated {:?} in {:.2?}", stack.data.dim(), t.elapsed());
    gantry_io::write_projections(&a.output, &stack)?;
    if let Some(x) = &a.rtk_xml {
        let text = gantry_io::rtk::format_rtk_xml(&stack.geometry).map_err(anyhow::Error::msg)?;
        gantry_io::atomic::write_bytes(x, text.as_bytes())?;
    }
    eprintln!(
        "wrote {} ({} views × {} rows × {} columns) and {}",
        a.output.display(),
        geometry.n_views(),
        geometry.detector.n_rows,
        geometry.detector.n_cols,
        gantry_io::geometry_path_for(&a.output).display()
    );
    Ok(())
}

/// The reconstruction grid, in the scan's world frame (LPS for a Gantry protocol, RTK's frame for
/// RTK data): `size` and `spacing` in that frame's axis order, placed by `origin` (the centre of
/// the first voxel, as ITK and RTK define it) or `center`. Defaults: 256 × 256 over the field of
/// view across the rotation axis, one slice per detector row along it.
pub(crate) fn default_grid(
    g: &ScanGeometry,
    size: Option<&[usize]>,
    spacing: Option<&[f64]>,
    center: Option<&[f64]>,
    origin: Option<&[f64]>,
) -> Result<VolumeGeometry> {
    let size = size.map(|s| xyz("--size", s)).transpose()?;
    let spacing = spacing.map(|s| xyz("--spacing", s)).transpose()?;
    let v0 = &g.views[0];
    let mag = if g.beam == gantry_core::Beam::Parallel { 1.0 } else { v0.sdd_mm() / v0.sid_mm() };
    let d = &g.detector;
    let fov = (d.n_cols as f64 * d.pixel_u_mm / mag).min(2.0 * v0.sid_mm() * 0.95);
    // Scanner-frame defaults (z = rotation axis), moved onto the world frame's axes.
    let scanner_size = [256, 256, d.n_rows];
    let scanner_spacing = [fov / 256.0, fov / 256.0, d.pixel_v_mm / mag];
    let m = g.frame.scanner_to_world();
    let axis_of = |r: usize| (0..3).max_by(|&a, &b| m[r][a].abs().total_cmp(&m[r][b].abs())).unwrap_or(r);
    let size = size.unwrap_or(std::array::from_fn(|r| scanner_size[axis_of(r)]));
    let spacing = spacing.unwrap_or_else(|| {
        std::array::from_fn(|r| {
            let a = axis_of(r);
            if a < 2 {
                fov / size[r] as f64
            } else {
                scanner_spacing[a]
            }
        })
    });
    let grid = match (center, origin) {
        (Some(_), Some(_)) => bail!("give --center or --origin, not both"),
        (None, Some(o)) => VolumeGeometry::new(size, spacing, xyz("--origin", o)?, gantry_core::volume::IDENTITY)?,
        (c, None) => VolumeGeometry::centered(size, spacing, xyz("--center", c.unwrap_or(&[0.0; 3]))?)?,
    };
    Ok(grid.in_frame(g.frame.world()))
}

pub(crate) fn recon(a: ReconArgs) -> Result<gantry_core::Volume> {
    let t0 = Instant::now();
    let stack = gantry_io::read_projections(&a.input, a.geometry.as_deref())?;
    let t_read = t0.elapsed();
    let grid = default_grid(
        &stack.geometry,
        a.size.as_deref(),
        a.spacing.as_deref(),
        a.center.as_deref(),
        a.origin.as_deref(),
    )?;
    eprintln!(
        "volume in the {} frame ({}): {:?} voxels of {:?} mm from {:?}",
        grid.frame,
        match stack.geometry.frame {
            gantry_core::ScanFrame::Rtk => "RTK's fixed frame, rotation axis y".to_string(),
            gantry_core::ScanFrame::Patient(p) => format!("DICOM patient coordinates, patient {p}"),
        },
        grid.dims,
        grid.spacing_mm,
        grid.origin_mm
    );
    let options = FdkOptions {
        window: Window::parse(&a.filter)?,
        cutoff: a.cutoff,
        subset_size: a.subset_size,
        cone: match a.cone {
            ConeArg::Weighted => ConeHandling::default(),
            ConeArg::Plain => ConeHandling::Plain,
        },
        cone_correction: a
            .cone_correction
            .then(|| ConeArtefactCorrection { mu_water_per_mm: a.mu_water, ..Default::default() }),
    };
    let bar = progress::bar(stack.geometry.n_views() as u64, "reconstructing");
    let t1 = Instant::now();
    let mu = fdk(&stack, &grid, &options, &|done, _| bar.set_position(done as u64))?;
    let t_recon = t1.elapsed();
    bar.finish_and_clear();
    let out = if a.mu { mu } else { mu_to_hu_volume(&mu, a.mu_water)? };
    let t2 = Instant::now();
    let desc = format!("Gantry FDK {} cutoff {}", a.filter, a.cutoff);
    gantry_io::write_volume(&a.output, &out, &desc)?;
    let t_write = t2.elapsed();
    let [nx, ny, nz] = grid.dims;
    let n_views = stack.geometry.n_views();
    let gups = (n_views * nx * ny * nz) as f64 / t_recon.as_secs_f64() / 1e9;
    eprintln!(
        "reconstructed {nx}×{ny}×{nz} from {n_views} views in {:.2} s ({gups:.2} GUPS); wrote {}",
        t_recon.as_secs_f64(),
        a.output.display()
    );
    if let Some(p) = &a.timing_json {
        let j = serde_json::json!({
            "read_s": t_read.as_secs_f64(), "reconstruct_s": t_recon.as_secs_f64(), "write_s": t_write.as_secs_f64(),
            "views": n_views, "voxels": nx * ny * nz, "gups": gups,
        });
        gantry_io::atomic::write_bytes(p, serde_json::to_string_pretty(&j)?.as_bytes())?;
    }
    Ok(out)
}
