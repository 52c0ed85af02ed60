//! `gantry dicom …`: DICOM folders in and out (the network commands come with the DICOM node).

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use gantry_io::dicom::net::{echo, store_files, PeerAddress};
use gantry_io::dicom::{read_series_volume, scan_folder, write_ct_series, DicomSeries, FolderScan, SeriesMeta};
use std::path::PathBuf;

#[derive(Args)]
pub struct DicomArgs {
    #[command(subcommand)]
    command: DicomCommand,
}

#[derive(Subcommand)]
enum DicomCommand {
    /// C-ECHO a DICOM node: `gantry dicom echo ORTHANC@127.0.0.1:4242`.
    Echo {
        /// AE@host:port
        peer: String,
        /// Our AE title.
        #[arg(long, default_value = "GANTRY")]
        aet: String,
    },
    /// C-STORE files and folders (searched recursively) to a DICOM node.
    Send {
        /// AE@host:port
        peer: String,
        paths: Vec<PathBuf>,
        #[arg(long, default_value = "GANTRY")]
        aet: String,
    },
    /// List the series in a folder (searched recursively).
    Ls { folder: PathBuf },
    /// De-identify every series under a folder by the PS3.15 Basic Application Level
    /// Confidentiality Profile into OUTPUT/STUDY/SERIES/INSTANCE.dcm (new UIDs): identifying
    /// attributes replaced, emptied or removed, private elements removed, UIDs remapped
    /// consistently from --key (the same key maps a UID the same way in every run).
    Anonymise {
        folder: PathBuf,
        #[arg(short, long)]
        output: PathBuf,
        /// The secret the new UIDs and the patient pseudonym derive from; default a random one
        /// (then only this run's files map consistently).
        #[arg(long)]
        key: Option<String>,
        /// Keep dates and times (Retain Longitudinal Temporal Information with Full Dates).
        #[arg(long)]
        keep_dates: bool,
    },
    /// Read a series from a folder into a volume file (.nii, .nii.gz, .mha), values in HU.
    Import {
        folder: PathBuf,
        /// The volume to write.
        #[arg(short, long)]
        output: PathBuf,
        /// Which series: its Series Instance UID, or its number in `gantry dicom ls` (from 1).
        /// Needed when the folder holds more than one.
        #[arg(long)]
        series: Option<String>,
        /// Write the time of each step as JSON here.
        #[arg(long)]
        timing_json: Option<PathBuf>,
    },
    /// Write a volume as a CT Image Storage series into a folder: HU as they are, μ converted to
    /// HU, maps (CBF, CBV, times, iodine, …) with their real-world unit.
    Export {
        /// The volume to write (.nii, .nii.gz, .mha), in LPS.
        input: PathBuf,
        /// What the values are, when the file does not say (hu, mu_per_mm, ml_100g_min, …).
        #[arg(long)]
        quantity: Option<String>,
        /// μ of water (1/mm) for converting μ to HU; default water at 60 keV.
        #[arg(long, default_value_t = gantry_core::units::MU_WATER_60KEV_PER_MM)]
        mu_water: f64,
        /// DICOM Patient Position written into the images (HFS, FFS, HFP, …).
        #[arg(long, default_value = "HFS")]
        patient_position: String,
        /// The folder to write into (made if missing).
        #[arg(short, long)]
        output: PathBuf,
        /// Copy patient, study and frame of reference from the series in this folder (it must
        /// hold exactly one) and mark the images as derived from it.
        #[arg(long)]
        from: Option<PathBuf>,
        #[arg(long)]
        patient_name: Option<String>,
        #[arg(long)]
        patient_id: Option<String>,
        #[arg(long, default_value = "Gantry reconstruction")]
        series_description: String,
        /// Seed of the UIDs (the same seed writes the same UIDs).
        #[arg(long)]
        seed: Option<u64>,
    },
}

fn pick<'a>(series: &'a [DicomSeries], which: Option<&str>, folder: &std::path::Path) -> Result<&'a DicomSeries> {
    match (which, series.len()) {
        (_, 0) => bail!("{}: no DICOM series found", folder.display()),
        (None, 1) => Ok(&series[0]),
        (None, n) => bail!("{}: {n} series found; choose one with --series (see `gantry dicom ls`)", folder.display()),
        (Some(w), n) => {
            if let Ok(i) = w.parse::<usize>() {
                if (1..=n).contains(&i) {
                    return Ok(&series[i - 1]);
                }
            }
            series
                .iter()
                .find(|s| s.uid == w)
                .with_context(|| format!("{}: no series {w:?} (of {n})", folder.display()))
        }
    }
}

/// One line on stderr per file a folder scan left out (naming it and why), then the counts.
fn report_left_out(scan: &FolderScan) {
    for line in scan.left_out_lines() {
        eprintln!("{line}");
    }
    let (n, u, d) = (scan.not_dicom.len(), scan.unreadable.len(), scan.duplicate_instances.len());
    if n + u + d > 0 {
        eprintln!("({n} files not DICOM, {u} unreadable, {d} duplicate instances left out)");
    }
}

pub fn run(a: DicomArgs) -> Result<()> {
    match a.command {
        DicomCommand::Echo { peer, aet } => {
            let peer = PeerAddress::parse(&peer)?;
            let t = std::time::Instant::now();
            let status = echo(&peer, &aet)?;
            if status != 0 {
                bail!("{peer} answered C-ECHO with status 0x{status:04X}");
            }
            println!("{peer}: C-ECHO success in {:.0} ms", t.elapsed().as_secs_f64() * 1e3);
            Ok(())
        }
        DicomCommand::Send { peer, paths, aet } => {
            let peer = PeerAddress::parse(&peer)?;
            let mut files = Vec::new();
            for p in &paths {
                if p.is_dir() {
                    let scan = scan_folder(p)?;
                    report_left_out(&scan);
                    for s in scan.series {
                        files.extend(s.files);
                    }
                } else if p.is_file() {
                    files.push(p.clone());
                } else {
                    bail!("{}: no such file or folder", p.display());
                }
            }
            if files.is_empty() {
                bail!("no DICOM files to send");
            }
            let t = std::time::Instant::now();
            let report = store_files(&peer, &aet, &files)?;
            for (f, why) in &report.failed {
                eprintln!("not stored: {}: {why}", f.display());
            }
            println!(
                "{peer}: stored {} of {} instances in {:.2} s",
                report.stored,
                files.len(),
                t.elapsed().as_secs_f64()
            );
            if !report.failed.is_empty() {
                bail!("{} instances were not stored", report.failed.len());
            }
            Ok(())
        }
        DicomCommand::Anonymise { folder, output, key, keep_dates } => {
            let key = match key {
                Some(k) => k,
                None => {
                    let mut bytes = [0u8; 16];
                    use std::io::Read;
                    std::fs::File::open("/dev/urandom")
                        .and_then(|mut f| f.read_exact(&mut bytes))
                        .context("no --key given and no random source to make one")?;
                    eprintln!("no --key: a random one was used, so only this run's files map consistently");
                    bytes.iter().map(|b| format!("{b:02x}")).collect()
                }
            };
            let options = gantry_io::dicom::anonymise::Options { key, keep_dates };
            let scan = scan_folder(&folder)?;
            report_left_out(&scan);
            let written = gantry_io::dicom::anonymise::anonymise_folder(&folder, &output, &options)?;
            eprintln!("wrote {} de-identified instances into {}", written.len(), output.display());
            Ok(())
        }
        DicomCommand::Ls { folder } => {
            let scan = scan_folder(&folder)?;
            for (i, s) in scan.series.iter().enumerate() {
                println!(
                    "{:>3}  {:<4} {:>5} images  {:<32} {}  (patient {}, study {})",
                    i + 1,
                    s.modality,
                    s.files.len(),
                    s.description,
                    s.uid,
                    s.patient_study.patient_id,
                    s.patient_study.study_instance_uid
                );
            }
            report_left_out(&scan);
            Ok(())
        }
        DicomCommand::Import { folder, output, series, timing_json } => {
            let t = std::time::Instant::now();
            let scan = scan_folder(&folder)?;
            report_left_out(&scan);
            let s = pick(&scan.series, series.as_deref(), &folder)?;
            let vol = read_series_volume(s)?;
            let read_s = t.elapsed().as_secs_f64();
            let t = std::time::Instant::now();
            gantry_io::write_volume(&output, &vol, &format!("HU from DICOM series {}", s.uid))?;
            if let Some(p) = timing_json {
                let j = serde_json::json!({"read_s": read_s, "write_s": t.elapsed().as_secs_f64(), "instances": s.files.len()});
                gantry_io::atomic::write_bytes(&p, serde_json::to_string_pretty(&j)?.as_bytes())?;
            }
            let g = &vol.geometry;
            eprintln!(
                "wrote {} ({}×{}×{} voxels of {:.3}×{:.3}×{:.3} mm) from series {}",
                output.display(),
                g.dims[0],
                g.dims[1],
                g.dims[2],
                g.spacing_mm[0],
                g.spacing_mm[1],
                g.spacing_mm[2],
                s.uid
            );
            Ok(())
        }
        DicomCommand::Export {
            input,
            quantity,
            mu_water,
            patient_position,
            output,
            from,
            patient_name,
            patient_id,
            series_description,
            seed,
        } => {
            let vol = export_values(gantry_io::read_volume(&input)?, &input, quantity.as_deref(), mu_water)?;
            let position = gantry_core::PatientPosition::parse(&patient_position)?;
            let mut meta = match &from {
                Some(src) => {
                    let scan = scan_folder(src)?;
                    SeriesMeta::derived_from(pick(&scan.series, None, src)?, &series_description)
                }
                None => SeriesMeta { series_description, ..SeriesMeta::default() },
            };
            if let Some(n) = patient_name {
                meta.patient_study.patient_name = n;
            }
            if let Some(id) = patient_id {
                meta.patient_study.patient_id = id;
            }
            meta.uid_seed = seed;
            meta.patient_position = position.code().to_string();
            let paths = write_ct_series(&output, &vol, &meta)?;
            eprintln!("wrote {} CT images into {}", paths.len(), output.display());
            Ok(())
        }
    }
}

/// The volume ready for DICOM: its stated (or `--quantity`) values, μ converted to HU.
fn export_values(
    vol: gantry_core::Volume,
    input: &std::path::Path,
    quantity: Option<&str>,
    mu_water: f64,
) -> Result<gantry_core::Volume> {
    use gantry_core::Quantity;
    let q = match (vol.quantity, quantity) {
        (Quantity::Unspecified, None) => bail!(
            "{}: the file does not say what its values are; give --quantity (hu for CT numbers, mu_per_mm for μ,              or a map's code such as ml_100g_min)",
            input.display()
        ),
        (Quantity::Unspecified, Some(code)) => Quantity::from_code(code)?,
        (stated, None) => stated,
        (stated, Some(code)) => {
            let given = Quantity::from_code(code)?;
            if given != stated {
                bail!("{}: --quantity {code} contradicts the file, which holds {}", input.display(), stated.describe());
            }
            stated
        }
    };
    let vol = vol.with_quantity(q);
    if q == Quantity::LinearAttenuation {
        eprintln!("{}: μ (1/mm) converted to HU (μ water {mu_water} /mm)", input.display());
        return Ok(gantry_recon::mu_to_hu_volume(&vol, mu_water)?);
    }
    Ok(vol)
}

#[derive(Args)]
pub struct ServeArgs {
    /// A node configuration (TOML: ae, port, bind, storage, allow, quiet_period_s, the limits,
    /// `[destinations]`, `[[rules]]`); the other options are ignored when it is given.
    #[arg(long)]
    config: Option<PathBuf>,
    /// This node's AE title.
    #[arg(long, default_value = "GANTRY")]
    ae: String,
    #[arg(long, default_value_t = 11112)]
    port: u16,
    /// Address to listen on (loopback by default; 0.0.0.0 for every interface).
    #[arg(long, default_value = "127.0.0.1")]
    bind: String,
    /// Where received instances are stored (STORAGE/STUDY/SERIES/INSTANCE.dcm, by their UIDs).
    #[arg(long, default_value = "gantry-storage")]
    storage: PathBuf,
    /// A calling AE title allowed in (repeat for more); without it, any caller.
    #[arg(long = "allow")]
    allow: Vec<String>,
}

/// `gantry serve`: a C-ECHO / C-STORE node with rules, until interrupted.
pub fn serve(a: ServeArgs) -> Result<()> {
    let config = match &a.config {
        Some(path) => crate::node::NodeConfig::read(path)?,
        None => crate::node::NodeConfig {
            ae: a.ae,
            port: a.port,
            bind: a.bind,
            storage: a.storage,
            allow: a.allow,
            quiet_period_s: 10.0,
            destinations: Default::default(),
            rules: Vec::new(),
            max_associations: crate::node::default_max_associations(),
            idle_timeout_s: crate::node::default_idle_timeout(),
            association_limit_s: crate::node::default_association_limit(),
            max_instance_mb: crate::node::default_max_instance_mb(),
        },
    };
    crate::node::run(config)
}
