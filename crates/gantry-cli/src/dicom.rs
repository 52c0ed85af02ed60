//! `gantry dicom …`: DICOM folders in and out (the network commands come with the DICOM node).

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use gantry_io::dicom::{read_series_volume, scan_folder, write_ct_series, DicomSeries, SeriesMeta};
use std::path::PathBuf;

#[derive(Args)]
pub struct DicomArgs {
    #[command(subcommand)]
    command: DicomCommand,
}

#[derive(Subcommand)]
enum DicomCommand {
    /// List the series in a folder (searched recursively).
    Ls { folder: PathBuf },
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
    },
    /// Write a volume (HU) as a CT Image Storage series into a folder.
    Export {
        /// The volume to write (.nii, .nii.gz, .mha), in HU.
        input: PathBuf,
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

pub fn run(a: DicomArgs) -> Result<()> {
    match a.command {
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
            if !scan.not_dicom.is_empty() || !scan.duplicate_instances.is_empty() {
                println!(
                    "({} files not DICOM, {} duplicate instances left out)",
                    scan.not_dicom.len(),
                    scan.duplicate_instances.len()
                );
            }
            Ok(())
        }
        DicomCommand::Import { folder, output, series } => {
            let scan = scan_folder(&folder)?;
            let s = pick(&scan.series, series.as_deref(), &folder)?;
            let vol = read_series_volume(s)?;
            gantry_io::write_volume(&output, &vol, &format!("HU from DICOM series {}", s.uid))?;
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
        DicomCommand::Export { input, output, from, patient_name, patient_id, series_description, seed } => {
            let vol = gantry_io::read_volume(&input)?;
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
            let paths = write_ct_series(&output, &vol, &meta)?;
            eprintln!("wrote {} CT images into {}", paths.len(), output.display());
            Ok(())
        }
    }
}
